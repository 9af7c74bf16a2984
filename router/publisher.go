package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Publisher publishes to one of the service's producer queues and emits
// the queue's telemetry. It is safe for concurrent use, and usable whether
// or not the Router runs. The producer's workers setting (the seed's
// publisher concurrency) bounds how many publish calls of the queue run at
// once in this process; more wait for a turn (or their context).
// PublishMessages batches for throughput.
type Publisher struct {
	r         *Router
	service   string
	producer  topology.Producer
	pub       message.Publisher
	bus       *telemetry.Bus
	published telemetry.Event
	turns     chan struct{} // one token per publish call running
}

// Publisher returns the publisher for queue, which must be one of the
// service's producer queues.
func (r *Router) Publisher(queue string) (*Publisher, error) {
	p, ok := r.cfg.Service.Producer(queue)
	if !ok {
		have := make([]string, 0, len(r.cfg.Service.Producers))
		for _, p := range r.cfg.Service.Producers {
			have = append(have, p.Queue)
		}
		return nil, fmt.Errorf("router %s: publisher for %w %q: the service does not produce to it (it produces to: %s)",
			r.Service(), pubsub.ErrQueueNotFound, queue, joinOrNone(have))
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if pub, ok := r.pubs[queue]; ok {
		return pub, nil
	}
	bp := r.cfg.Backend.Publisher()
	if r.cfg.WrapPublisher != nil {
		bp = r.cfg.WrapPublisher(bp)
	}
	pub := &Publisher{
		r:         r,
		service:   r.Service(),
		producer:  p,
		pub:       bp,
		bus:       r.cfg.Telemetry,
		published: telemetry.PublishedEvent(queue),
		turns:     make(chan struct{}, max(p.Workers, 1)),
	}
	r.pubs[queue] = pub
	return pub, nil
}

// Queue returns the queue the publisher publishes to.
func (p *Publisher) Queue() string { return p.producer.Queue }

// PublishOption sets something on a message before it is published.
type PublishOption func(*message.Message)

// WithPriority sets the message's priority (higher is delivered first on
// backends with pubsub.CapPriorityOrder).
func WithPriority(prio pubsub.Priority) PublishOption {
	return func(m *message.Message) { pubsub.SetPriority(m, prio) }
}

// WithMetadata sets a metadata entry on the message.
func WithMetadata(key, value string) PublishOption {
	return func(m *message.Message) { m.Metadata.Set(key, value) }
}

// To addresses the message to an instance, on a queue with addressed
// delivery; pubsub.InstanceAll addresses it to every instance of the
// consuming service.
func To(instance string) PublishOption {
	return func(m *message.Message) { m.Metadata.Set(pubsub.MetadataTo, instance) }
}

// WithDelay makes the message deliverable d after now, not before (a
// delayed publish): until then it counts as scheduled in Stats. It is
// checked and counted from the moment the option is applied.
func WithDelay(d time.Duration) PublishOption {
	return func(m *message.Message) { pubsub.SetDeliverAt(m, time.Now().Add(d)) }
}

// WithDeliverAt makes the message deliverable at t, not before (a
// scheduled publish); a time already past delivers at once.
func WithDeliverAt(t time.Time) PublishOption {
	return func(m *message.Message) { pubsub.SetDeliverAt(m, t) }
}

// WithTTL makes the message expire d after now: if no consumer took it
// by then, it becomes a dead letter with the reason "expired" (never
// dropped). It replaces the queue's message_ttl for this message.
func WithTTL(d time.Duration) PublishOption {
	return func(m *message.Message) { pubsub.SetExpiresAt(m, time.Now().Add(d)) }
}

// WithID sets the message's id instead of a new random UUID; useful to make
// a publish idempotent on the caller's side.
func WithID(id string) PublishOption {
	return func(m *message.Message) { m.UUID = id }
}

// WithDedupKey sets the message's dedup key (pubsub.MetadataDedupKey):
// within the queue's dedup_window (2 minutes by default), publishing
// another message with the same key on the queue stores nothing, and
// Publish returns the id of the message stored first. The key is 1-512
// bytes of UTF-8 text without control characters. On NATS the first id
// can be unknown (""), see backends/nats.
func WithDedupKey(key string) PublishOption {
	return func(m *message.Message) { pubsub.SetDedupKey(m, key) }
}

// Publish publishes one message with payload and returns its id: with
// WithDedupKey, the id of the message stored with the key, which is not
// this one's when it was a duplicate.
func (p *Publisher) Publish(ctx context.Context, payload []byte, opts ...PublishOption) (string, error) {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for _, o := range opts {
		o(msg)
	}
	if err := p.PublishMessages(ctx, msg); err != nil {
		return "", err
	}
	return msg.UUID, nil
}

// Reply publishes payload to the instance that published to: the answer
// to a message, on a queue with addressed delivery (a consensus result
// for the instance whose proposal it answers).
func (p *Publisher) Reply(ctx context.Context, to *message.Message, payload []byte, opts ...PublishOption) (string, error) {
	origin := OriginOf(to)
	if origin == "" {
		return "", fmt.Errorf("reply on %s to message %s: %w: it carries no origin instance (%s)", p.producer.Queue, to.UUID, pubsub.ErrInvalidArgument, pubsub.MetadataOrigin)
	}
	return p.Publish(ctx, payload, append(opts, To(origin))...)
}

// PublishMessages publishes msgs in one call, which backends write as one
// batch where they can. Messages without a UUID get one; messages without a
// priority get the producer's when it is not normal; every message gets
// telemetry.MetadataPublishedAt, this instance as its origin
// (pubsub.MetadataOrigin) and ctx as its context. On a queue with
// addressed delivery every message must name its instance (To, Reply); on
// one with broadcast delivery every instance of the consuming service
// heard from within BroadcastRetention gets a copy. For each message it emits the queue's published event (e.g.
// proposal_published) and message_published, or publish_failed on error.
func (p *Publisher) PublishMessages(ctx context.Context, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish to %s: %w", p.producer.Queue, err)
	}
	start := time.Now()
	stamp := strconv.FormatInt(start.UnixNano(), 10)
	for _, m := range msgs {
		if m.UUID == "" {
			m.UUID = watermill.NewUUID()
		}
		if m.Metadata == nil {
			m.Metadata = message.Metadata{}
		}
		if m.Metadata.Get(telemetry.MetadataPublishedAt) == "" {
			m.Metadata.Set(telemetry.MetadataPublishedAt, stamp)
		}
		if _, has, _ := pubsub.PriorityOf(m); !has && p.producer.Priority != "" && p.producer.Priority != topology.PriorityNormal {
			pubsub.SetPriority(m, p.producer.Priority.Backend())
		}
		if _, has, _ := pubsub.ExpiresAtOf(m); !has && p.producer.MessageTTL > 0 {
			pubsub.SetExpiresAt(m, start.Add(p.producer.MessageTTL))
		}
		m.Metadata.Set(pubsub.MetadataOrigin, p.r.cfg.Service.InstanceID)
		m.SetContext(ctx)
	}
	var err error
	var sent []*message.Message
	select {
	case p.turns <- struct{}{}:
		sent, err = p.route(ctx, msgs)
		<-p.turns
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		err = fmt.Errorf("publish %d message(s) to %s: %w", len(msgs), p.producer.Queue, err)
		sent = msgs
	}
	p.emit(sent, time.Since(start), err)
	return err
}

// emit emits the events of msgs: for addressed and broadcast queues, of
// each instance's copy, with the instance named.
func (p *Publisher) emit(msgs []*message.Message, elapsed time.Duration, err error) {
	if !p.bus.ListeningUnder(telemetry.Prefix) {
		return
	}
	for _, m := range msgs {
		meas := telemetry.Measurements{
			telemetry.MeasureCount:     1,
			telemetry.MeasureDuration:  float64(elapsed) / float64(time.Millisecond),
			telemetry.MeasureBatchSize: float64(len(msgs)),
		}
		md := telemetry.Metadata{
			telemetry.MetaQueue: p.producer.Queue, telemetry.MetaService: p.service, telemetry.MetaMessageID: m.UUID,
		}
		if prio, has, _ := pubsub.PriorityOf(m); has {
			md[telemetry.MetaPriority] = int(prio)
		}
		if to := m.Metadata.Get(pubsub.MetadataTo); to != "" && p.producer.Delivery != topology.DeliveryWork {
			md[telemetry.MetaInstance] = to
		}
		if err != nil {
			md[telemetry.MetaError] = err.Error()
			p.bus.Execute(telemetry.PublishFailed, meas, md)
			continue
		}
		if p.published != nil {
			p.bus.Execute(p.published, meas, md)
		}
		p.bus.Execute(telemetry.MessagePublished, meas, md)
	}
}

// route publishes msgs as the queue's delivery says, and returns what it
// published: msgs, or each instance's copies of them.
func (p *Publisher) route(ctx context.Context, msgs []*message.Message) ([]*message.Message, error) {
	queue := p.producer.Queue
	switch p.producer.Delivery {
	case topology.DeliveryBroadcast:
		if err := p.r.cfg.Backend.KeepLatest(ctx, queue, msgs[len(msgs)-1]); err != nil {
			return nil, err
		}
		return p.fanOut(ctx, msgs, p.r.cfg.BroadcastRetention)
	case topology.DeliveryAddressed:
		byTarget := map[string][]*message.Message{}
		var order []string
		for _, m := range msgs {
			to := m.Metadata.Get(pubsub.MetadataTo)
			if to == "" {
				return nil, fmt.Errorf("%w: queue %s has addressed delivery: name the instance each message is for (router.To, Publisher.Reply)", pubsub.ErrInvalidArgument, queue)
			}
			if to != pubsub.InstanceAll {
				if err := pubsub.ValidateInstanceID(to); err != nil {
					return nil, err
				}
			}
			if _, seen := byTarget[to]; !seen {
				order = append(order, to)
			}
			byTarget[to] = append(byTarget[to], m)
		}
		var sent []*message.Message
		for _, to := range order {
			if to != pubsub.InstanceAll {
				if err := p.pub.Publish(pubsub.InstanceQueue(queue, to), byTarget[to]...); err != nil {
					return nil, err
				}
				sent = append(sent, byTarget[to]...)
				continue
			}
			copies, err := p.fanOut(ctx, byTarget[to], p.r.cfg.InstanceTTL)
			if err != nil {
				return nil, err
			}
			sent = append(sent, copies...)
		}
		return sent, nil
	}
	return msgs, p.pub.Publish(queue, msgs...)
}

// fanOut publishes a copy of msgs to every instance of the consuming
// service with a heartbeat within wait (how long the copy would wait for
// it: BroadcastRetention on a broadcast queue, InstanceTTL for a message
// addressed to all), and returns the copies. The instances' publishes run
// side by side, so that a backend that commits concurrent publishes
// together (PostgreSQL's group commit) writes them in one go.
func (p *Publisher) fanOut(ctx context.Context, msgs []*message.Message, wait time.Duration) ([]*message.Message, error) {
	ids, err := p.r.cfg.Backend.InstancesOf(ctx, consumingService(p.service), wait)
	if err != nil {
		return nil, err
	}
	copies := make([][]*message.Message, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		copies[i] = pubsub.CopyMessages(ctx, msgs)
		for _, c := range copies[i] {
			c.Metadata.Set(pubsub.MetadataTo, id)
		}
		wg.Go(func() { errs[i] = p.pub.Publish(pubsub.InstanceQueue(p.producer.Queue, id), copies[i]...) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var sent []*message.Message
	for _, c := range copies {
		sent = append(sent, c...)
	}
	return sent, nil
}
