package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/quantumflow/quantumflow/pubsub"
)

// settleTimeout bounds the JetStream calls that settle one message (state
// writes, the dead-letter copy is bounded by publish_timeout). They run
// on their own context: a message handed out must be settled even when
// its subscription is ending.
const settleTimeout = 10 * time.Second

// subscriber is the Watermill subscriber. Each Subscribe call pulls from
// the queue's one durable consumer, so every subscription of every
// process competes for the queue's messages.
type subscriber struct {
	d         *driver
	mu        sync.Mutex
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Subscribe returns a channel of the queue's messages. The subscription
// hands out one message at a time and waits for its Ack or Nack before the
// next; it ends (and closes the channel) when ctx is done or the
// subscriber or backend closes.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := pubsub.ValidateQueueName(topic); err != nil {
		return nil, err
	}
	d := s.d
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, pubsub.ErrClosed)
	default:
	}
	if d.isClosed() {
		s.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, pubsub.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()

	q, err := d.queue(ctx, topic)
	if err != nil {
		s.wg.Done()
		return nil, d.closedErr(fmt.Errorf("subscribe to %s: %w", topic, err))
	}
	sub := &subscription{s: s, d: d, q: q, out: make(chan *message.Message)}
	go sub.run(ctx)
	return sub.out, nil
}

// Close ends every subscription: messages handed out and not yet settled
// go back to their queue at once (as would a Nack); acks and nacks that
// arrived first are honoured. Closing twice is fine.
func (s *subscriber) Close() error {
	s.closeAll()
	return nil
}

func (s *subscriber) closeAll() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closing)
		s.mu.Unlock()
	})
	s.wg.Wait()
}

// subscription is one Subscribe call's loop.
type subscription struct {
	s   *subscriber
	d   *driver
	q   *queueEntry
	out chan *message.Message
	// meta is the metadata of the message in hand, reused from one
	// message to the next.
	meta nats.MsgMetadata
}

// ackBody acknowledges a JetStream message.
var ackBody = []byte("+ACK")

func (sub *subscription) run(parent context.Context) {
	defer sub.s.wg.Done()
	defer close(sub.out)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	go func() {
		select {
		case <-sub.s.closing:
			cancel()
		case <-sub.d.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	d := sub.d
	f := d.fetcherFor(sub.q)
	// Released after the last handle: a fetcher stopped by its last
	// subscription gives back what it holds.
	defer d.releaseFetcher(f)
	// One lease ticker for the subscription, reset per message.
	lease := time.NewTicker(max(d.cfg.ackWait/3, 100*time.Millisecond))
	defer lease.Stop()
	slot := make(chan *nats.Msg, 1)
	for ctx.Err() == nil {
		m, err := f.take(ctx, slot)
		if err != nil {
			return
		}
		if !sub.handle(ctx, m, lease) {
			return
		}
	}
}

// handle hands one message out and settles it. It returns false when the
// subscription is ending.
func (sub *subscription) handle(ctx context.Context, jm *nats.Msg, lease *time.Ticker) bool {
	d := sub.d
	meta := &sub.meta
	err := ackMetadata(jm.Reply, meta)
	if err != nil {
		d.log.Error("subscription: message without JetStream metadata", "queue", sub.q.name, "subject", jm.Subject, "error", err)
		return true
	}
	var ds deliveryState
	hasState := false
	if meta.NumDelivered > 1 {
		ds, hasState = d.putBacks.take(sub.q.name, meta.Sequence.Stream, meta.NumDelivered)
	}
	if meta.NumDelivered > 1 && !hasState {
		sctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		ds, hasState, err = stateStore{d}.get(sctx, sub.q.name, meta.Sequence.Stream)
		cancel()
		if err != nil {
			d.log.Warn("subscription: reading delivery state failed; first failure time unknown", "queue", sub.q.name, "error", err)
		}
	}
	if hasState && ds.Waiting {
		// Back in a worker's hands: no longer waiting in the queue.
		ds.Waiting, ds.RetryAt, ds.Deliveries = false, time.Time{}, meta.NumDelivered
		sub.putState(meta, ds)
	}

	msg := message.NewMessage(messageID(jm.Header, meta.Stream, meta.Sequence.Stream), jm.Data)
	msg.Metadata = metadataOf(jm.Header, msg.Metadata)
	attempt := int(meta.NumDelivered)
	if hasState {
		attempt = ds.attempts(meta.NumDelivered)
	}
	dv := &pubsub.Delivery{Queue: sub.q.name, Attempt: attempt, FirstFailureAt: ds.FirstFailureAt}
	// The message's context ends once it is settled (Watermill's
	// contract), or when the subscription ends: both return from here,
	// through End (a DeliveryContext does not watch its parent, which
	// would cost a registration with the subscription context's lock per
	// message).
	msgCtx := pubsub.NewDeliveryContext(ctx, dv)
	defer msgCtx.End()
	msg.SetContext(msgCtx)

	select {
	case sub.out <- msg:
	case <-ctx.Done():
		sub.putBack(jm, meta, ds, hasState)
		return false
	}

	// While the handler runs, keep the lease (AckWait) alive: only a
	// consumer that stopped working (crashed, hung connection) loses its
	// message to another worker. The ticker is not reset per message (a
	// timer operation on every delivery): a tick comes within ackWait/3 of
	// any point, so the lease is extended in time; a tick soon after the
	// hand-out only extends it early.
	for {
		select {
		case <-msg.Acked():
			sub.settleAck(jm, meta, msg, dv, hasState)
			return true
		case <-msg.Nacked():
			sub.settleNack(jm, meta, msg, dv, ds, hasState)
			return true
		case <-lease.C:
			_ = jm.InProgress()
		case <-ctx.Done():
			// A settle that happened before the end wins.
			select {
			case <-msg.Acked():
				sub.settleAck(jm, meta, msg, dv, hasState)
			case <-msg.Nacked():
				sub.settleNack(jm, meta, msg, dv, ds, hasState)
			default:
				// Handed out but unsettled: it goes back now, as an
				// attempt that did not finish.
				ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, time.Now(), meta.NumDelivered, meta.Timestamp
				sub.putState(meta, ds)
				_ = jm.Nak()
			}
			return false
		}
	}
}

// putBack returns a message the subscription received but never handed
// out, recording that this delivery was no attempt.
func (sub *subscription) putBack(jm *nats.Msg, meta *nats.MsgMetadata, ds deliveryState, known bool) {
	if !known {
		putBackMsg(sub.d, sub.q.name, jm)
		return
	}
	ds.Uncounted++
	ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, time.Now(), meta.NumDelivered, meta.Timestamp
	sub.putState(meta, ds)
	_ = jm.Nak()
}

func (sub *subscription) putState(meta *nats.MsgMetadata, ds deliveryState) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := (stateStore{sub.d}).put(ctx, sub.q.name, meta.Sequence.Stream, ds); err != nil {
		sub.d.log.Warn("subscription: writing delivery state failed", "queue", sub.q.name, "error", err)
	}
}

func (sub *subscription) removeState(meta *nats.MsgMetadata) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := (stateStore{sub.d}).remove(ctx, sub.q.name, meta.Sequence.Stream); err != nil {
		sub.d.log.Warn("subscription: removing delivery state failed", "queue", sub.q.name, "error", err)
	}
}

func (sub *subscription) settleAck(jm *nats.Msg, meta *nats.MsgMetadata, msg *message.Message, dv *pubsub.Delivery, hasState bool) {
	out := dv.Outcome()
	if out.DeadLetter != nil {
		sub.deadLetter(jm, meta, msg, dv, out, hasState)
		return
	}
	// Published directly, as nats.Msg.Ack would (asynchronously) but
	// without its per-call bookkeeping: a message is settled once.
	if err := sub.d.nc.Publish(jm.Reply, ackBody); err != nil {
		sub.d.log.Warn("subscription: ack failed; the message will come back after ack_wait", "queue", sub.q.name, "message_id", msg.UUID, "error", err)
	}
	if hasState {
		sub.removeState(meta)
	}
}

func (sub *subscription) settleNack(jm *nats.Msg, meta *nats.MsgMetadata, msg *message.Message, dv *pubsub.Delivery, ds deliveryState, hasState bool) {
	out := dv.Outcome()
	if out.DeadLetter != nil {
		sub.deadLetter(jm, meta, msg, dv, out, hasState)
		return
	}
	now := time.Now()
	if ds.FirstFailureAt.IsZero() {
		ds.FirstFailureAt = now
	}
	ds.LastFailureAt = now
	if out.LastError != "" {
		ds.LastError = out.LastError
	}
	var delay time.Duration
	if out.Retry {
		delay = out.RetryDelay
	}
	ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, now.Add(delay), meta.NumDelivered, meta.Timestamp
	// The state goes first: the redelivery reads it.
	sub.putState(meta, ds)
	var err error
	if delay > 0 {
		err = jm.NakWithDelay(delay)
	} else {
		err = jm.Nak()
	}
	if err != nil {
		sub.d.log.Warn("subscription: nack failed; the message will come back after ack_wait", "queue", sub.q.name, "message_id", msg.UUID, "error", err)
	}
}

// deadLetter moves a message to the dead-letter stream: the copy is
// stored (JetStream acked it) before the message is terminated in its
// queue, so a crash in between leaves the message in both places, never
// in neither; the copy's Nats-Msg-Id makes the second move of the same
// delivery a no-op within the dedup window.
func (sub *subscription) deadLetter(jm *nats.Msg, meta *nats.MsgMetadata, msg *message.Message, dv *pubsub.Delivery, out pubsub.Outcome, hasState bool) {
	d := sub.d
	now := time.Now()
	first := dv.FirstFailureAt
	if first.IsZero() {
		first = now
	}
	errText := out.DeadLetter.Error
	if errText == "" {
		errText = out.LastError
	}
	info := deadLetterInfo{
		Queue: sub.q.name, Error: errText, Attempts: dv.Attempt,
		Handler: out.DeadLetter.Handler, Service: out.DeadLetter.Service,
		FirstFailureAt: first, LastFailureAt: now, PublishedAt: meta.Timestamp,
		SourceSeq: meta.Sequence.Stream, Metadata: msg.Metadata,
	}
	m := deadLetterMessage(d.names.dlqSubject(sub.q.name), msg.UUID, jm.Data, info)
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.publishTimeout)
	defer cancel()
	if err := d.publishAll(ctx, d.names.dlqStream(), []*nats.Msg{m}, nil, nil); err != nil {
		d.log.Error("subscription: storing the dead letter failed; the message stays in its queue", "queue", sub.q.name, "message_id", msg.UUID, "error", err)
		_ = jm.NakWithDelay(time.Second)
		return
	}
	// Terminate synchronously: the server confirms the message left the
	// queue.
	tctx, tcancel := context.WithTimeout(context.Background(), settleTimeout)
	defer tcancel()
	if err := jm.Term(nats.Context(tctx)); err != nil {
		d.log.Warn("subscription: terminating a dead-lettered message failed; it may come back once and be dead-lettered again", "queue", sub.q.name, "message_id", msg.UUID, "error", err)
	}
	if hasState {
		sub.removeState(meta)
	}
}

// deadLetterMessage builds the dead-letter stream's copy of a message.
func deadLetterMessage(subject, id string, payload []byte, info deadLetterInfo) *nats.Msg {
	b, _ := json.Marshal(info) // plain fields always marshal
	return &nats.Msg{
		Subject: subject,
		Data:    payload,
		Header: nats.Header{
			hdrMsgID:      {id + "@" + info.Queue + ":" + strconv.FormatUint(info.SourceSeq, 10)},
			hdrID:         {id},
			hdrQueue:      {info.Queue},
			hdrDeadLetter: {string(b)},
		},
	}
}
