package nats

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/internal/dedupset"
	"github.com/quantumflow/quantumflow/pubsub"
)

// Stream metadata keys holding a queue's declaration.
const (
	metaQueue      = "quantumflow_queue"
	metaPriority   = "quantumflow_priority"
	metaMaxRetries = "quantumflow_max_retries"
	metaRetryDelay = "quantumflow_retry_delay"
	// metaDedupWindow is the declared dedup window; metaKeyed is "true"
	// once a message with a dedup key was published to the queue, and its
	// stream has the dedup window as its duplicate window (see idWindow).
	metaDedupWindow = "quantumflow_dedup_window"
	metaKeyed       = "quantumflow_keyed"
)

// queueEntry caches what a driver knows about one queue's stream and
// consumer. ready is closed once stream and consumer exist (or err says
// why not).
type queueEntry struct {
	name     string
	stream   string
	subject  string
	consumer jetstream.Consumer
	// created is when consumer was created, and earlier the messages
	// with a delivery state from before it (see earlierStates).
	created  time.Time
	earlier  earlierStates
	priority pubsub.Priority
	// batched: the stream allows fast batch publishing (a server older
	// than 2.14 does not know the setting and leaves it off). Cleared
	// when the server says batch publishing is disabled after all.
	batched atomic.Bool
	// singles merges concurrent publishes of one message (coalesce.go).
	singles singles
	// window is the queue's dedup window; dedup caches the keys this
	// driver stored within it (see dedup.go). keyed: the stream's
	// duplicate window is the dedup window (see keyWindow); keyMu orders
	// the first keyed publishes.
	window  time.Duration
	dedupMu sync.Mutex
	dedup   dedupset.Set[storedKey]
	keyed   atomic.Bool
	keyMu   sync.Mutex
	ready   chan struct{}
	err     error
}

// Init creates the dead-letter, delivery-state and audit streams and the
// instance registry's bucket. It is idempotent and safe to run from
// several processes at once.
func (d *driver) Init(ctx context.Context) error {
	dlq := jetstream.StreamConfig{
		Name:        d.names.dlqStream(),
		Description: "QuantumFlow dead letters: messages that failed for good, browsable until retried or purged",
		Subjects:    []string{d.names.dlqSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     d.cfg.storage,
		Replicas:    d.cfg.replicas,
		// A full dead-letter stream refuses the copy, so the message stays
		// in its queue instead of an old dead letter being dropped.
		Discard:    jetstream.DiscardNew,
		Duplicates: d.cfg.dedupWindow,
	}
	state := jetstream.StreamConfig{
		Name:              d.names.stateStream(),
		Description:       "QuantumFlow delivery state: failure times, last error and retry time of messages that failed",
		Subjects:          []string{d.names.stateSubjects()},
		Retention:         jetstream.LimitsPolicy,
		Storage:           d.cfg.storage,
		Replicas:          d.cfg.replicas,
		MaxMsgsPerSubject: 1,
	}
	// A cluster that is starting (no leader yet, peers not all up) is
	// waited for, within publish_timeout.
	var err error
	if err := d.retry(ctx, "init", attemptTimeout, func(ctx context.Context) error {
		d.dlqStream, err = d.ensureStream(ctx, dlq)
		return err
	}); err != nil {
		return fmt.Errorf("init: stream %s: %w", dlq.Name, err)
	}
	if err := d.retry(ctx, "init", attemptTimeout, func(ctx context.Context) error {
		d.stateStream, err = d.ensureStream(ctx, state)
		return err
	}); err != nil {
		return fmt.Errorf("init: stream %s: %w", state.Name, err)
	}
	if err := d.retry(ctx, "init", attemptTimeout, func(ctx context.Context) error {
		d.registry, err = d.ensureRegistry(ctx)
		return err
	}); err != nil {
		return fmt.Errorf("init: bucket %s: %w", d.names.registry(), err)
	}
	return d.ensureAudit(ctx)
}

// ensureStream creates a stream unless it exists; an existing stream keeps
// its configuration (an operator may have changed it on purpose).
func (d *driver) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := d.js.Stream(ctx, cfg.Name)
	if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, err
	}
	st, err = d.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another process created it first.
		return d.js.Stream(ctx, cfg.Name)
	}
	return st, err
}

func (d *driver) queueStreamConfig(spec pubsub.QueueSpec) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        d.names.stream(spec.Name),
		Description: "QuantumFlow queue " + spec.Name,
		Subjects:    []string{d.names.subject(spec.Name)},
		// WorkQueue: a message is removed once acked (or terminated after
		// its dead-letter copy is stored), so the stream holds exactly the
		// queue's unfinished messages.
		Retention: jetstream.WorkQueuePolicy,
		Storage:   d.cfg.storage,
		Replicas:  d.cfg.replicas,
		MaxMsgs:   d.cfg.maxMsgs,
		MaxBytes:  d.cfg.maxBytes,
		MaxAge:    d.cfg.maxAge,
		// A full queue refuses new messages (Publish fails) rather than
		// dropping old ones.
		Discard:    jetstream.DiscardNew,
		Duplicates: d.idWindow(spec.DedupWindow),
		Metadata:   queueMetadata(spec),
		// Publishing several messages goes as fast batches: one answer
		// per batch instead of one per message (see batchpublish.go).
		AllowBatchPublish: true,
	}
}

// consumerConfig is the configuration of a queue's consumer.
//
// With consumer_storage=memory its state lives in the servers' memory
// instead of a file each server rewrites after deliveries and acks, one
// per consumer: with a queue per instance the rewrites do not coalesce,
// and they were most of the servers' work with many instances (bench/
// instances on the development machine: 400 instances held instead of
// 200; the addressed round trip with 25 instances at 1.00-1.13x the work
// queue's p50 in three runs, 1.24-1.28x in two without). The package doc
// says what a restart does then; loadState keeps the attempts.
func (d *driver) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName,
		Description:   "QuantumFlow workers: every subscription of the queue pulls from this one consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.cfg.ackWait,
		MaxDeliver:    -1, // the retry policy decides when a message is dead
		MaxAckPending: d.cfg.maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MemoryStorage: d.cfg.memConsumers,
	}
}

// idWindow is the duplicate window of a queue's stream until a message
// with a dedup key is published to it (see keyWindow): every message
// carries a Nats-Msg-Id so that a publish's retries (within
// publish_timeout, plus a try still under way) are dropped as the
// duplicates they are, and that needs no more than this. The server keeps
// each id for the whole window, and at 16k messages a second a 2-minute
// window held 2M ids, in memory the server scans at every garbage
// collection: the steady p99 rose from 7.5 to 19.8 ms as it filled.
func (d *driver) idWindow(dedupWindow time.Duration) time.Duration {
	return min(dedupWindow, d.cfg.publishTimeout+attemptTimeout)
}

// queueMetadata is a queue's declaration as its stream keeps it, every
// field as given (MaxRetries 0 is "never retry").
func queueMetadata(spec pubsub.QueueSpec) map[string]string {
	return map[string]string{
		metaQueue:       spec.Name,
		metaPriority:    strconv.Itoa(int(spec.Priority)),
		metaMaxRetries:  strconv.Itoa(spec.MaxRetries),
		metaRetryDelay:  spec.RetryDelay.String(),
		metaDedupWindow: spec.DedupWindow.String(),
	}
}

// keyedStream reports whether a queue's stream has its dedup window as
// its duplicate window: a keyed message was published to it, or it was
// created before the window was kept in its metadata (with the dedup
// window then).
func keyedStream(metadata map[string]string) bool {
	return metadata[metaKeyed] == "true" || metadata[metaDedupWindow] == ""
}

// declaredAs reports whether a stream's metadata already holds spec's
// declaration (the server adds keys of its own, which are ignored).
func declaredAs(metadata map[string]string, spec pubsub.QueueSpec) bool {
	for k, v := range queueMetadata(spec) {
		if metadata[k] != v {
			return false
		}
	}
	return true
}

// queueInfoOf reads a queue's declaration from its stream. A stream
// without one (created by another client) has pubsub.DefaultQueueSpec's
// settings, as an undeclared queue does.
func queueInfoOf(si *jetstream.StreamInfo) pubsub.QueueInfo {
	md := si.Config.Metadata
	def := pubsub.DefaultQueueSpec(md[metaQueue])
	info := pubsub.QueueInfo{Name: def.Name, Priority: def.Priority, MaxRetries: def.MaxRetries, RetryDelay: def.RetryDelay,
		DedupWindow: si.Config.Duplicates, CreatedAt: si.Created}
	if w, err := time.ParseDuration(md[metaDedupWindow]); err == nil {
		info.DedupWindow = w
	}
	if p, err := strconv.Atoi(md[metaPriority]); err == nil {
		info.Priority = pubsub.Priority(p)
	}
	if n, err := strconv.Atoi(md[metaMaxRetries]); err == nil {
		info.MaxRetries = n
	}
	if dl, err := time.ParseDuration(md[metaRetryDelay]); err == nil {
		info.RetryDelay = dl
	}
	return info
}

// queue returns the cached entry of a queue, creating its stream and
// consumer with default settings when they do not exist (publishing to or
// subscribing to an undeclared queue works).
func (d *driver) queue(ctx context.Context, name string) (*queueEntry, error) {
	d.queuesMu.Lock()
	e, ok := d.queues[name]
	if !ok {
		e = d.newQueueEntry(name)
		d.queues[name] = e
		d.queuesMu.Unlock()
		e.err = d.retry(ctx, "queue "+name, attemptTimeout, func(ctx context.Context) error { return d.loadQueue(ctx, e, nil) })
		if e.err != nil {
			d.forget(name)
		}
		close(e.ready)
	} else {
		d.queuesMu.Unlock()
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// forget drops a queue from the cache, after its stream or consumer was
// found missing, so that the next use looks it up again.
func (d *driver) forget(name string) {
	d.queuesMu.Lock()
	delete(d.queues, name)
	d.queuesMu.Unlock()
}

// loadQueue fills e from the server, creating the stream and consumer
// when missing. With spec non-nil (DeclareQueue) it also updates the
// stream's declaration and the consumer's settings.
func (d *driver) loadQueue(ctx context.Context, e *queueEntry, spec *pubsub.QueueSpec) error {
	st, err := d.js.Stream(ctx, e.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s := pubsub.DefaultQueueSpec(e.name)
		// A queue used without a declaration has the URL's dedup_window.
		s.DedupWindow = d.cfg.dedupWindow
		if spec != nil {
			s = *spec
		}
		st, err = d.js.CreateStream(ctx, d.queueStreamConfig(s))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = d.js.Stream(ctx, e.stream)
		}
		if err != nil {
			return fmt.Errorf("queue %s: create stream %s: %w", e.name, e.stream, err)
		}
	case err != nil:
		return fmt.Errorf("queue %s: stream %s: %w", e.name, e.stream, err)
	case spec != nil:
		// Only when the declaration changed, or the stream predates fast
		// batch publishing on a server that has it (once): every router
		// declares its queues at start, and nats-server v2.15.2 races
		// (under -race) when a stream update meets another process's
		// consumer create.
		if cfg, changed := d.declaredConfig(st.CachedInfo(), *spec); changed {
			if st, err = d.js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("queue %s: update stream %s: %w", e.name, e.stream, err)
			}
		}
	}
	si, info := st.CachedInfo(), queueInfoOf(st.CachedInfo())
	e.priority, e.window = info.Priority, info.DedupWindow
	e.keyed.Store(si.Config.Metadata[metaKeyed] == "true" && si.Config.Duplicates >= e.window)
	e.batched.Store(si.Config.AllowBatchPublish)

	if e.consumer, err = d.ensureConsumer(ctx, st, spec != nil); err != nil {
		return fmt.Errorf("queue %s: consumer %s: %w", e.name, consumerName, err)
	}
	e.created = e.consumer.CachedInfo().Created
	return nil
}

// ensureConsumer returns the consumer of a queue's stream, creating it
// when there is none. A declaration (update) brings an existing one to
// the URL's settings, but for its storage, which JetStream cannot change:
// to move a queue to the other consumer_storage, delete its consumer (the
// messages stay in the stream).
func (d *driver) ensureConsumer(ctx context.Context, st jetstream.Stream, update bool) (jetstream.Consumer, error) {
	c, err := st.Consumer(ctx, consumerName)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = st.CreateConsumer(ctx, d.consumerConfig())
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return st.Consumer(ctx, consumerName)
		}
		return c, err
	case err != nil || !update:
		return c, err
	}
	cfg := d.consumerConfig()
	if mem := c.CachedInfo().Config.MemoryStorage; mem != cfg.MemoryStorage {
		d.log.Info("a queue's consumer keeps its storage: JetStream cannot change it; delete the consumer to change it (its messages stay)",
			"stream", c.CachedInfo().Stream, "memory", mem)
		cfg.MemoryStorage = mem
	}
	return st.CreateOrUpdateConsumer(ctx, cfg)
}

// declaredConfig is the configuration of a queue's stream (now as si
// says) with spec declared, and whether it differs. Its duplicate window
// is the dedup window once the queue is keyed, idWindow before; the same
// window declared again never narrows it (another process may have just
// widened it for a key: keyWindow), another one declared sets it.
func (d *driver) declaredConfig(si *jetstream.StreamInfo, spec pubsub.QueueSpec) (jetstream.StreamConfig, bool) {
	cfg := si.Config
	keyed := keyedStream(cfg.Metadata)
	window := d.idWindow(spec.DedupWindow)
	if keyed {
		window = spec.DedupWindow
	}
	if cfg.Metadata[metaDedupWindow] == spec.DedupWindow.String() {
		window = max(window, cfg.Duplicates)
	}
	batch := !cfg.AllowBatchPublish && batchPublishKnown(si)
	if declaredAs(cfg.Metadata, spec) && (cfg.Metadata[metaKeyed] == "true") == keyed && cfg.Duplicates == window && !batch {
		return cfg, false
	}
	cfg.Metadata = queueMetadata(spec)
	if keyed {
		cfg.Metadata[metaKeyed] = "true"
	}
	cfg.Duplicates = window
	cfg.AllowBatchPublish = batchPublishKnown(si)
	return cfg, true
}

// keyWindow makes q's duplicate window its dedup window and marks it
// keyed, before the first message with a dedup key is published to it
// (see idWindow): once per queue, the mark kept in the stream's metadata
// for every process.
func (d *driver) keyWindow(ctx context.Context, q *queueEntry) error {
	if q.keyed.Load() {
		return nil
	}
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	if q.keyed.Load() {
		return nil
	}
	err := d.retry(ctx, "dedup window of "+q.name, attemptTimeout, func(ctx context.Context) error {
		st, err := d.js.Stream(ctx, q.stream)
		if err != nil {
			return err
		}
		cfg := st.CachedInfo().Config
		if cfg.Metadata[metaKeyed] == "true" && cfg.Duplicates >= q.window {
			return nil
		}
		md := maps.Clone(cfg.Metadata)
		if md == nil {
			md = map[string]string{} // a stream another client created
		}
		md[metaKeyed] = "true"
		cfg.Metadata = md
		cfg.Duplicates = max(cfg.Duplicates, q.window)
		_, err = d.js.UpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("queue %s: setting the dedup window: %w", q.name, err)
	}
	q.keyed.Store(true)
	return nil
}

// newQueueEntry returns the entry of a queue not yet loaded.
func (d *driver) newQueueEntry(name string) *queueEntry {
	e := &queueEntry{name: name, stream: d.names.stream(name), subject: d.names.subject(name), ready: make(chan struct{})}
	e.dedup.Limit = dedupCacheKeys
	return e
}

// DeclareQueue creates the queue's stream and consumer, or updates the
// declaration (priority, retries) kept in the stream's metadata and the
// consumer's ack wait.
func (d *driver) DeclareQueue(ctx context.Context, spec pubsub.QueueSpec) error {
	e := d.newQueueEntry(spec.Name)
	if err := d.retry(ctx, "declare "+spec.Name, attemptTimeout, func(ctx context.Context) error { return d.loadQueue(ctx, e, &spec) }); err != nil {
		return err
	}
	close(e.ready)
	d.queuesMu.Lock()
	d.queues[spec.Name] = e
	d.queuesMu.Unlock()
	return nil
}

// ListQueues lists the queues whose streams exist, ordered by name.
func (d *driver) ListQueues(ctx context.Context) ([]pubsub.QueueInfo, error) {
	lister := d.js.ListStreams(ctx, jetstream.WithStreamListSubject(d.names.queueSubjects()))
	var out []pubsub.QueueInfo
	for si := range lister.Info() {
		info := queueInfoOf(si)
		if info.Name == "" {
			// Not created by QuantumFlow: name it after its stream.
			info.Name = queueOfToken(strings.TrimPrefix(si.Config.Name, d.names.streamPrefix()))
		}
		out = append(out, info)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	slices.SortFunc(out, func(a, b pubsub.QueueInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// queueStream returns a queue's stream, or pubsub.ErrQueueNotFound when
// it does not exist. It never creates one: admin calls on an unknown queue
// fail.
func (d *driver) queueStream(ctx context.Context, queue string) (jetstream.Stream, error) {
	st, err := d.js.Stream(ctx, d.names.stream(queue))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, pubsub.ErrQueueNotFound
	}
	return st, err
}

// EnsureQueue creates the queue's stream and consumer, with
// pubsub.DefaultQueueSpec, unless they exist.
func (d *driver) EnsureQueue(ctx context.Context, queue string) error {
	_, err := d.queue(ctx, queue)
	return err
}

// batchPublishKnown reports whether the server that answered with si
// supports fast batch publishing: JetStream API level 4 (nats-server
// 2.14) or later, which it reports in the stream's metadata.
func batchPublishKnown(si *jetstream.StreamInfo) bool {
	level, err := strconv.Atoi(si.Config.Metadata["_nats.level"])
	return err == nil && level >= 4
}
