package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// How the engine drives ReceiveBatch (pubsub.Tuning), and how long a
// receive waits on the server.
const (
	// receivesInFlight is 1: JetStream shares a consumer's messages out
	// among the pull requests waiting on it, one message each in turn, so
	// two receives in flight would get interleaved messages ([6 8] and
	// [5 7]) and one that started first could bring later messages than
	// the other: the engine, which hands results out in call order, would
	// then deliver out of order.
	receivesInFlight = 1
	// prefetchHold: a message received ahead of the subscriptions and not
	// taken within it goes back to the queue, so a backend whose
	// consumers slowed down does not hoard messages other processes could
	// handle.
	prefetchHold = 200 * time.Millisecond
	// A receive that found the queue empty waits with a pull request
	// that lives pullExpiry on the server (then the iterator sends
	// another), which sends a heartbeat every pullHeartbeat while it has
	// nothing: two missed mean the server is gone. Cancelled, it waits up
	// to drainWait for the server to confirm (see await).
	pullExpiry    = 15 * time.Second
	pullHeartbeat = time.Second
	drainWait     = 5 * time.Second
	// settleTimeout bounds the JetStream calls that settle messages (state
	// writes and removals, the dead-letter copy's ack). They run without
	// the caller's cancellation: a message handed out must be settled
	// even while its subscription ends.
	settleTimeout = 10 * time.Second
)

// delivery is a received message's pubsub.Received.AckID: the JetStream
// message and what the driver knows about its failures.
type delivery struct {
	msg       jetstream.Msg
	seq       uint64 // stream sequence
	delivered uint64 // JetStream's delivery count, this delivery included
	published time.Time
	state     deliveryState
	hasState  bool
}

// ReceiveBatch takes what the queue holds now, up to max; when it holds
// nothing, it waits for one message, and the engine's next call finds the
// rest (see fetch). JetStream delivers nacked messages due again first,
// then the others in stream order.
func (d *driver) ReceiveBatch(ctx context.Context, queue string, max int) ([]*pubsub.Received, error) {
	q, err := d.queue(ctx, queue)
	if err != nil {
		return nil, err
	}
	ms, err := d.fetch(ctx, q, max)
	if consumerGone(err) {
		// Deleted by an operator, or with its stream: the next call
		// recreates it.
		d.forget(queue)
	}
	if len(ms) == 0 {
		return nil, err
	}
	// Messages taken win over an error: the next call meets it again.
	return d.received(ctx, q, ms), nil
}

// fetch pulls up to max messages of q: what the queue holds now (a
// no-wait pull request) or, when it holds nothing, the first message to
// come (see await).
func (d *driver) fetch(ctx context.Context, q *queueEntry, max int) ([]jetstream.Msg, error) {
	batch, err := q.consumer.FetchNoWait(max)
	if err != nil {
		return nil, err
	}
	var ms []jetstream.Msg
	for m := range batch.Messages() {
		ms = append(ms, m)
	}
	if len(ms) > 0 || consumerGone(batch.Error()) {
		return ms, batch.Error()
	}
	// Other refusals of a no-wait request (other requests waiting for
	// the messages there are) mean wait as well.
	m, err := d.await(ctx, q)
	if m == nil {
		return nil, err
	}
	return []jetstream.Msg{m}, nil
}

// await waits for one message of q, until ctx ends.
//
// It waits with nats.go's pull iterator (Consumer.Messages) for one
// message rather than with Fetch, for what happens when ctx ends first:
// the pull request still waits on the server, and must be abandoned
// without losing a message and without disordering the queue.
//   - Fetch (FetchContext) unsubscribes at once: a message already on its
//     way would be lost until ack_wait, its delivery counted as an
//     attempt. The iterator's Drain unsubscribes as nats.go's
//     Subscription.Drain does, the server confirming: what the server
//     sent before is still received, and returned.
//   - The server drops a request whose subscriber is gone only when it
//     next looks at its waiting requests; a redelivery it takes from its
//     queue for such a request meanwhile goes to the back of the queue
//     (nats-server's consumer.loopAndGatherMsgs). The engine gives
//     messages back right after cancelling a receive, so the request is
//     made to go first: reading the consumer's info has the server look
//     (consumer.processWaiting).
//
// The iterator also re-sends its request after a reconnect or a consumer
// leader change, and reports a server gone silent (missed heartbeats).
func (d *driver) await(ctx context.Context, q *queueEntry) (jetstream.Msg, error) {
	it, err := q.consumer.Messages(jetstream.PullMaxMessages(1), jetstream.StopAfter(1),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return nil, err
	}
	// Stopped, not drained, once its one message came: it asks for no
	// other.
	defer it.Stop()
	m, err := it.Next(jetstream.NextContext(ctx))
	if err == nil {
		return m, nil
	}
	if ctx.Err() == nil {
		// The pull failed on its own: the server went silent (missed
		// heartbeats: it, or the consumer's leader, is gone, and the
		// request with it) or the consumer was deleted. Nothing will
		// confirm a drain, and a consumer without a leader answers no
		// info request: waiting for them held the queue's next receive
		// up for 10s after a node died.
		return nil, err
	}
	it.Drain()
	if late, lerr := it.Next(jetstream.NextMaxWait(drainWait)); lerr == nil {
		// Came as ctx ended: returned all the same, the engine gives it
		// back.
		return late, nil
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	if _, ierr := q.consumer.Info(ictx); ierr != nil {
		d.log.Debug("reading consumer info after abandoning a pull request failed", "queue", q.name, "error", ierr)
	}
	return nil, err
}

// consumerGone reports whether a pull failed because the queue's consumer
// (or its stream) is not there.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders)
}

// received turns pulled messages into the engine's, with their attempts
// and failure times from the delivery state of those delivered before.
func (d *driver) received(ctx context.Context, q *queueEntry, ms []jetstream.Msg) []*pubsub.Received {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	out := make([]*pubsub.Received, 0, len(ms))
	var back []stateWrite
	for _, m := range ms {
		meta, err := m.Metadata()
		if err != nil {
			// A pull consumer delivers nothing else; nothing to settle.
			d.log.Error("message without JetStream metadata", "queue", q.name, "subject", m.Subject(), "error", err)
			continue
		}
		dv := &delivery{msg: m, seq: meta.Sequence.Stream, delivered: meta.NumDelivered, published: meta.Timestamp}
		d.loadState(sctx, q.name, dv)
		if dv.delivered <= 1 {
			// A delayed message has a state from its publish (see
			// scheduleDelayed), for its settlement to remove.
			_, dv.hasState = deliverAtOf(m.Headers())
		}
		attempt := int(dv.delivered)
		if dv.hasState {
			attempt = max(1, dv.state.attempts(dv.delivered))
			if dv.state.Waiting {
				// Back in a consumer's hands: no longer waiting in the
				// queue, for Stats and ListPending.
				ds := dv.state
				ds.Waiting, ds.RetryAt, ds.Deliveries = false, time.Time{}, dv.delivered
				back = append(back, stateWrite{dv: dv, ds: ds})
			}
		}
		h := m.Headers()
		out = append(out, &pubsub.Received{
			ID:             messageID(h, meta.Stream, dv.seq),
			Payload:        m.Data(),
			Metadata:       metadataOf(h, nil),
			Priority:       q.priority,
			Attempt:        attempt,
			FirstFailureAt: dv.state.FirstFailureAt,
			Seq:            int64(dv.seq),
			AckID:          dv,
			// Redeliveries come in the order of their naks; a first
			// delivery only once none waits (they go first).
			OutOfOrder: dv.delivered > 1,
		})
	}
	d.putStates(sctx, q.name, back)
	return out
}

// Settle acks, naks (after writing the failure's state) and dead-letters.
// Acks are asynchronous; Close flushes them.
func (d *driver) Settle(ctx context.Context, queue string, ss []pubsub.Settlement) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var (
		errs    []error
		writes  []stateWrite
		delays  []time.Duration
		settled []*delivery // with a state to remove
	)
	now := time.Now()
	for _, s := range ss {
		if s.Msg.Lost() {
			continue
		}
		dv := s.Msg.AckID.(*delivery)
		ds := dv.state
		switch s.Action {
		case pubsub.SettleAck:
			if err := dv.msg.Ack(); err != nil {
				errs = append(errs, fmt.Errorf("ack %s: %w", s.Msg.ID, err))
			} else if dv.hasState {
				settled = append(settled, dv)
			}
			continue
		case pubsub.SettleDeadLetter:
			if err := d.deadLetter(ctx, queue, s); err != nil {
				errs = append(errs, err)
			} else if dv.hasState {
				settled = append(settled, dv)
			}
			continue
		case pubsub.SettleRetry:
			if ds.FirstFailureAt.IsZero() {
				ds.FirstFailureAt = now
			}
			ds.LastFailureAt = now
			if s.Error != "" {
				ds.LastError = s.Error
			}
		case pubsub.SettleInterrupted:
			// Back at once, its attempt counted, no failure recorded.
			s.Delay = 0
		case pubsub.SettleDefer:
			// Not due yet: back when it is, this delivery not counted.
			ds.Uncounted++
		}
		ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, now.Add(s.Delay), dv.delivered, dv.published
		writes = append(writes, stateWrite{dv: dv, ds: ds})
		delays = append(delays, s.Delay)
	}
	d.removeStates(queue, settled)
	// The states go first: the redelivery reads them.
	d.putStates(ctx, queue, writes)
	for i, w := range writes {
		if err := w.dv.msg.NakWithDelay(delays[i]); err != nil {
			errs = append(errs, fmt.Errorf("nak: %w; the message comes back after ack_wait", err))
		}
	}
	return errors.Join(errs...)
}

// deadLetter moves a message to the dead-letter stream: the copy is
// stored (JetStream acked it) before the message is acked in its queue,
// so a failure in between leaves the message in both places, never in
// neither; the copy's Nats-Msg-Id makes the second move of the same
// delivery a no-op within the dedup window.
func (d *driver) deadLetter(ctx context.Context, queue string, s pubsub.Settlement) error {
	dv := s.Msg.AckID.(*delivery)
	now := time.Now()
	first := s.Msg.FirstFailureAt
	if first.IsZero() {
		first = now
	}
	info := deadLetterInfo{
		Queue: queue, Error: s.Error, Attempts: s.Msg.Attempt,
		FirstFailureAt: first, LastFailureAt: now, PublishedAt: dv.published,
		SourceSeq: dv.seq, Metadata: s.Msg.Metadata,
	}
	if r := s.DeadLetter; r != nil {
		info.Handler, info.Service = r.Handler, r.Service
		if r.Error != "" {
			info.Error = r.Error
		}
	}
	m := deadLetterMessage(d.names.dlqSubject(queue), s.Msg.ID, s.Msg.Payload, info)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.publishTimeout)
	defer cancel()
	if err := d.publishAll(pctx, []*nats.Msg{m}, nil, nil, nil); err != nil {
		_ = dv.msg.NakWithDelay(time.Second)
		return fmt.Errorf("dead letter %s: storing the copy failed; the message stays in its queue: %w", s.Msg.ID, err)
	}
	// Acked synchronously: the server confirms the message left its queue.
	err := d.retry(ctx, "ack dead letter", requestTry, func(ctx context.Context) error { return dv.msg.DoubleAck(ctx) })
	if err != nil {
		d.log.Warn("acking a dead-lettered message failed; it may come back once and be dead-lettered again", "queue", queue, "message_id", s.Msg.ID, "error", err)
	}
	return nil
}

// GiveBack naks messages that never reached a consumer, after recording
// their deliveries as uncounted (see deliveryState), all states at once.
// The states go into a cache too: the message usually comes back to this
// driver, which then reads its state without a round trip. A message
// whose state could not be stored is naked too and comes back with this
// delivery counted; the error says how many.
func (d *driver) GiveBack(ctx context.Context, queue string, ms []*pubsub.Received) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	now := time.Now()
	writes := make([]stateWrite, 0, len(ms))
	for _, r := range ms {
		if r.Lost() {
			continue
		}
		dv := r.AckID.(*delivery)
		ds := dv.state
		ds.Uncounted++
		ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, now, dv.delivered, dv.published
		writes = append(writes, stateWrite{dv: dv, ds: ds})
	}
	stored := d.putStates(ctx, queue, writes)
	var errs []error
	unstored := 0
	for i, w := range writes {
		if stored[i] {
			d.givenBack.add(queue, w.dv.seq, w.ds)
		} else {
			unstored++
		}
		var err error
		if i < len(writes)-1 {
			err = w.dv.msg.Nak()
		} else {
			err = d.nakAndWait(ctx, w.dv.msg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("nak: %w; the message comes back after ack_wait", err))
		}
	}
	if unstored > 0 {
		// Naked all the same: they come back at once rather than after
		// ack_wait, with this delivery counted either way.
		errs = append(errs, fmt.Errorf("delivery state of %d of %d messages not stored: they come back with this delivery counted as an attempt", unstored, len(writes)))
	}
	return errors.Join(errs...)
}

// nakAndWait naks m and waits for the server to answer, which it does
// once it has processed every ack and nak this connection sent before on
// the queue's consumer (it processes them in order, apart from pull
// requests). So messages given back are in the consumer's redelivery
// queue when GiveBack returns: an admin read then counts them as pending,
// and the engine's next receive gets them before newer messages (with
// plain naks, a pull request could overtake them). nats.go's
// jetstream.Msg has no synchronous nak: this is its nak, sent as a request.
func (d *driver) nakAndWait(ctx context.Context, m jetstream.Msg) error {
	_, err := d.nc.RequestWithContext(ctx, m.Reply(), []byte("-NAK"))
	return err
}

// ExtendLeases tells JetStream the messages are being worked on (a
// progress ack), which restarts their ack_wait. JetStream does not answer
// it, so a lease already lost is not noticed here.
func (d *driver) ExtendLeases(_ context.Context, _ string, ms []*pubsub.Received) error {
	var errs []error
	for _, r := range ms {
		if r.Lost() {
			continue
		}
		if err := r.AckID.(*delivery).msg.InProgress(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
