package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Paused queues are keys "p.<queue>" (the name base64url-encoded) of the
// registry bucket, so that they live, and are dropped, with the
// namespace's other shared records.

var (
	_ pubsub.QueuePauser  = (*driver)(nil)
	_ pubsub.MessageStore = (*driver)(nil)
)

func pausedKey(queue string) string { return "p." + keyPart(queue) }

// SetQueuePaused puts or deletes queue's key.
func (d *driver) SetQueuePaused(ctx context.Context, queue string, paused bool) error {
	err := d.retry(ctx, "pause", requestTry, func(ctx context.Context) error {
		if paused {
			_, err := d.registry.Put(ctx, pausedKey(queue), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
			return err
		}
		err := d.registry.Delete(ctx, pausedKey(queue))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("queue %s: paused: %w", queue, err)
	}
	// This process knows at once; its watch, if one runs, tells the same
	// a moment later.
	d.paused.put(queue, paused)
	return nil
}

// pausedWatch keeps the paused queues as the registry bucket says, from
// a watch of its "p." keys: the engine asks every half second, and a
// listing each time would create a consumer on the bucket's stream each
// time, in every process. A watch that failed or ended (the bucket
// deleted) is started again by the next read.
type pausedWatch struct {
	mu      sync.Mutex
	w       jetstream.KeyWatcher
	ready   chan struct{} // closed once the watch delivered the keys there were, or ended
	ended   bool          // the watch failed or ended: start another
	stopped bool          // the driver closed
	set     map[string]bool
}

// current returns the running watch's ready channel, starting a watch
// if none runs.
func (p *pausedWatch) current(ctx context.Context, kv jetstream.KeyValue) (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, pubsub.ErrClosed
	}
	if p.w != nil && !p.ended {
		return p.ready, nil
	}
	// The watch lives with the driver, not with the read that starts it:
	// nats.go ends a watch's subscription with the context it was given.
	w, err := kv.Watch(context.WithoutCancel(ctx), "p.>")
	if err != nil {
		return nil, err
	}
	p.w, p.ended, p.ready, p.set = w, false, make(chan struct{}), map[string]bool{}
	go p.follow(w, p.ready)
	return p.ready, nil
}

// follow applies the watch's updates until it ends.
func (p *pausedWatch) follow(w jetstream.KeyWatcher, ready chan struct{}) {
	readyOnce := sync.OnceFunc(func() { close(ready) })
	defer func() {
		p.mu.Lock()
		if p.w == w {
			p.ended = true
		}
		p.mu.Unlock()
		readyOnce()
	}()
	for e := range w.Updates() {
		if e == nil {
			readyOnce() // the keys there were are all in
			continue
		}
		name, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(e.Key(), "p."))
		if err == nil {
			p.put(string(name), e.Operation() == jetstream.KeyValuePut)
		}
	}
}

// put records a queue as paused or not.
func (p *pausedWatch) put(queue string, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		p.set = map[string]bool{}
	}
	if paused {
		p.set[queue] = true
	} else {
		delete(p.set, queue)
	}
}

// stop ends the watch.
func (p *pausedWatch) stop() {
	p.mu.Lock()
	w := p.w
	p.stopped = true
	p.mu.Unlock()
	if w != nil {
		_ = w.Stop()
	}
}

// PausedQueues returns the paused queues the watch knows, once it has
// read those there were.
func (d *driver) PausedQueues(ctx context.Context) ([]string, error) {
	ready, err := d.paused.current(ctx, d.registry)
	if err != nil {
		return nil, fmt.Errorf("paused queues: %w", err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("paused queues: %w", ctx.Err())
	}
	d.paused.mu.Lock()
	defer d.paused.mu.Unlock()
	if d.paused.ended {
		return nil, errors.New("paused queues: the watch of the registry ended; the next read starts another")
	}
	out := make([]string, 0, len(d.paused.set))
	for q := range d.paused.set {
		out = append(out, q)
	}
	return out, nil
}

// scheduleDelayed records the delivery state of messages published
// delayed or scheduled (MetadataDeliverAt in the future): waiting, due at
// their time, never delivered. Stats and ListPending then count and list
// them as scheduled. JetStream itself delivers them at once: the engine
// defers such a delivery (pubsub.SettleDefer, a nak with the delay that is
// not counted as an attempt). Server-side message schedules (the
// Nats-Schedule header of nats-server 2.12+) were not used: a schedule is
// a message on a subject of its own that the server copies to the queue's
// subject when due, under a new sequence and without the original's
// Nats-Msg-Id deduplication, and it would need a stream setting
// (AllowMsgSchedules) on every queue stream, existing ones included.
func (d *driver) scheduleDelayed(ctx context.Context, queue string, msgs []*nats.Msg, acks map[*nats.Msg]*jetstream.PubAck) {
	now := time.Now()
	var ws []stateWrite
	for _, m := range msgs {
		at, ok := deliverAtOf(m.Header)
		ack := acks[m]
		if !ok || !at.After(now) || ack == nil || ack.Duplicate {
			// A duplicate's sequence is the stored message's, whose
			// schedule it must not change.
			continue
		}
		ws = append(ws, stateWrite{dv: &delivery{seq: ack.Sequence}, ds: deliveryState{Waiting: true, RetryAt: at, PublishedAt: now}})
	}
	d.putStates(ctx, queue, ws)
}

// deliverAtOf returns the MetadataDeliverAt time of a stored message.
func deliverAtOf(h nats.Header) (time.Time, bool) {
	if !strings.Contains(h.Get(hdrMetadata), pubsub.MetadataDeliverAt) {
		return time.Time{}, false
	}
	md := metadataOf(h, nil)
	at, err := time.Parse(time.RFC3339Nano, md.Get(pubsub.MetadataDeliverAt))
	return at, err == nil
}

// queueNames returns queue, or with "" every queue.
func (d *driver) queueNames(ctx context.Context, queue string) ([]string, error) {
	if queue != "" {
		return []string{queue}, nil
	}
	qs, err := d.ListQueues(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.Name
	}
	return out, nil
}

// findMessage returns the stream sequences of the snapshot queue's
// messages with id. JetStream looks messages up by sequence or subject
// only, and a work-queue stream allows no second consumer to read it
// with: it reads the queue's messages one request each (as ListPending
// does), which suits an operator's look-up, not a hot path.
func (d *driver) findMessage(ctx context.Context, queue string, s *queueSnapshot, id string) ([]uint64, error) {
	var seqs []uint64
	subject := d.names.subject(queue)
	for seq := s.info.State.FirstSeq; s.info.State.Msgs > 0 && seq <= s.info.State.LastSeq; {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if messageID(m.Header, s.info.Config.Name, m.Sequence) == id {
			seqs = append(seqs, m.Sequence)
		}
		seq = m.Sequence + 1
	}
	return seqs, nil
}

// stateOf says where the message at seq is: waiting (due or scheduled),
// never delivered, or else held by a consumer (a work-queue stream holds
// only unfinished messages).
func (s *queueSnapshot) stateOf(seq uint64) (pubsub.MessageState, deliveryState) {
	if ds, ok := s.scheduled[seq]; ok {
		return pubsub.StateScheduled, ds
	}
	if ds, ok := s.due[seq]; ok {
		return pubsub.StatePending, ds
	}
	if s.cons == nil || seq > s.cons.Delivered.Stream {
		return pubsub.StatePending, deliveryState{}
	}
	return pubsub.StateInFlight, deliveryState{}
}

// GetMessage finds message id in queue's stream (or every queue's).
func (d *driver) GetMessage(ctx context.Context, queue, id string) (pubsub.MessageDetail, error) {
	names, err := d.queueNames(ctx, queue)
	if err != nil {
		return pubsub.MessageDetail{}, err
	}
	for _, name := range names {
		s, err := d.snapshot(ctx, name)
		if err != nil {
			return pubsub.MessageDetail{}, err
		}
		seqs, err := d.findMessage(ctx, name, s, id)
		if err != nil {
			return pubsub.MessageDetail{}, fmt.Errorf("queue %s: find message %s: %w", name, id, err)
		}
		if len(seqs) == 0 {
			continue
		}
		m, err := s.stream.GetMsg(ctx, seqs[0])
		if err != nil {
			return pubsub.MessageDetail{}, fmt.Errorf("queue %s: read message %s: %w", name, id, err)
		}
		return s.detail(name, m), nil
	}
	return pubsub.MessageDetail{}, fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
}

// detail describes a stored message of the snapshot's queue.
func (s *queueSnapshot) detail(queue string, m *jetstream.RawStreamMsg) pubsub.MessageDetail {
	md := metadataOf(m.Header, nil)
	state, ds := s.stateOf(m.Sequence)
	out := pubsub.MessageDetail{
		ID: messageID(m.Header, s.info.Config.Name, m.Sequence), Queue: queue, State: state,
		Payload: m.Data, Metadata: md, Priority: priorityOf(md, queueInfoOf(s.info).Priority),
		Attempts: ds.attempts(ds.Deliveries), LastError: ds.LastError, CreatedAt: m.Time,
		FirstFailureAt: ds.FirstFailureAt, LastFailureAt: ds.LastFailureAt,
	}
	if state == pubsub.StateScheduled {
		out.AvailableAt = ds.RetryAt
	}
	if state == pubsub.StateInFlight {
		// JetStream tells the delivery count to the consumer only: this
		// delivery, at least.
		out.Attempts = max(out.Attempts, 1)
	}
	return out
}

// DeleteMessage deletes the waiting copies of message id from their
// streams, and their delivery states.
func (d *driver) DeleteMessage(ctx context.Context, queue, id string) error {
	names, err := d.queueNames(ctx, queue)
	if err != nil {
		return err
	}
	deleted, held := 0, 0
	for _, name := range names {
		s, err := d.snapshot(ctx, name)
		if err != nil {
			return err
		}
		seqs, err := d.findMessage(ctx, name, s, id)
		if err != nil {
			return fmt.Errorf("queue %s: find message %s: %w", name, id, err)
		}
		for _, seq := range seqs {
			if state, _ := s.stateOf(seq); state == pubsub.StateInFlight {
				held++
				continue
			}
			if err := s.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("queue %s: delete message %s: %w", name, id, err)
			}
			d.removeStates(name, []*delivery{{seq: seq}})
			deleted++
		}
	}
	switch {
	case deleted > 0:
		return nil
	case held > 0:
		return fmt.Errorf("message %s: %w: a consumer holds it", id, pubsub.ErrMessageInFlight)
	}
	return fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
}
