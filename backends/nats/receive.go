package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// takeNowWait bounds the wait for the server's answer to a no-wait
	// pull request (see takeNow): a few milliseconds usually, up to a
	// second measured with the machine overloaded.
	takeNowWait = 2 * pullHeartbeat
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
	from      stateSource
	// record is this driver's give-back record that state came from, to
	// close when the message no longer needs it (see closeRecord).
	record *ownRecord

	// mu orders ExtendLeases' state write (see there) before the
	// settlement's; settled is set by the settlement.
	mu      sync.Mutex
	settled bool
}

// settle marks dv settled (given back included): ExtendLeases leaves it
// alone from now on, and one of its writes under way is done (so dv.from
// no longer changes).
func (dv *delivery) settle() {
	dv.mu.Lock()
	dv.settled = true
	dv.mu.Unlock()
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

// fetch pulls up to max messages of q: what the queue holds now (see
// takeNow) or, when it holds nothing, the first message to come (see
// await).
func (d *driver) fetch(ctx context.Context, q *queueEntry, max int) ([]jetstream.Msg, error) {
	ms, err := d.takeNow(q, max)
	if len(ms) > 0 || err != nil {
		return ms, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Nothing ready, or other requests wait for what there is: wait.
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
	failed := ctx.Err() == nil
	wait := drainWait
	if failed {
		// The pull failed on its own: the server went silent (missed
		// heartbeats: it is slow, or it or the consumer's leader is
		// gone, and the request with it) or the consumer was deleted. A
		// slow server still confirms the drain, and what it sent is
		// taken; a gone one never does: waiting long held the queue's
		// next receive up for 10s after a node died.
		wait = pullHeartbeat
	}
	it.Drain()
	if late, lerr := it.Next(jetstream.NextMaxWait(wait)); lerr == nil {
		// Came as the pull ended: returned all the same (when ctx
		// ended, the engine gives it back).
		return late, nil
	}
	if failed {
		// A consumer without a leader answers no info request.
		return nil, err
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
	dvs := make([]*delivery, 0, len(ms))
	var inRecords []*delivery
	for _, m := range ms {
		meta, err := m.Metadata()
		if err != nil {
			// A pull consumer delivers nothing else; nothing to settle.
			d.log.Error("message without JetStream metadata", "queue", q.name, "subject", m.Subject(), "error", err)
			continue
		}
		dv := &delivery{msg: m, seq: meta.Sequence.Stream, delivered: meta.NumDelivered, published: meta.Timestamp}
		if d.loadState(sctx, q, dv) {
			inRecords = append(inRecords, dv)
		}
		if _, delayed := deliverAtOf(m.Headers()); delayed && dv.delivered <= 1 {
			// A delayed message has a state from its publish (see
			// scheduleDelayed), for its settlement to remove.
			dv.from = ownState
		}
		dvs = append(dvs, dv)
	}
	if len(inRecords) > 0 {
		d.loadRecordStates(sctx, q.name, inRecords)
	}
	out := make([]*pubsub.Received, 0, len(dvs))
	var back []stateWrite
	for _, dv := range dvs {
		attempt := int(dv.delivered)
		if dv.from != noState {
			attempt = max(1, dv.state.attempts(dv.delivered))
		}
		switch {
		case dv.from == ownState && dv.state.Waiting:
			// Back in a consumer's hands: no longer waiting in the
			// queue, for Stats and ListPending.
			ds := dv.state
			ds.Waiting, ds.RetryAt, ds.Deliveries = false, time.Time{}, dv.delivered
			back = append(back, stateWrite{dv: dv, ds: ds})
		case dv.from == recordState:
			// The same, written only if it is held long (ExtendLeases):
			// most are settled before. Meanwhile an admin read here
			// knows, and one elsewhere counts the message waiting.
			d.records.hold(q.name, dv.seq, true)
		}
		h := dv.msg.Headers()
		out = append(out, &pubsub.Received{
			ID:             messageID(h, q.stream, dv.seq),
			Payload:        dv.msg.Data(),
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
		settled []*delivery // settled for good
	)
	now := time.Now()
	for _, s := range ss {
		if s.Msg.Lost() {
			continue
		}
		dv := s.Msg.AckID.(*delivery)
		dv.settle()
		if dv.from == recordState {
			d.records.hold(queue, dv.seq, false)
		}
		ds := dv.state
		switch s.Action {
		case pubsub.SettleAck:
			if err := dv.msg.Ack(); err != nil {
				errs = append(errs, fmt.Errorf("ack %s: %w", s.Msg.ID, err))
			} else {
				settled = append(settled, dv)
			}
			continue
		case pubsub.SettleDeadLetter:
			if err := d.deadLetter(ctx, queue, s); err != nil {
				errs = append(errs, err)
			} else {
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
	var removals []*delivery
	for _, dv := range settled {
		if dv.from == ownState {
			removals = append(removals, dv)
		}
		d.closeRecord(dv)
	}
	d.removeStates(queue, removals)
	// The states go first: the redelivery reads them.
	stored := d.putStates(ctx, queue, writes)
	for i, w := range writes {
		if stored[i] {
			d.closeRecord(w.dv)
		}
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
// their deliveries as uncounted (see deliveryState): in one record for
// all (givenBackRecord), but a message that has a state of its own (it
// failed before) in that. The states go into a cache too: the message
// usually comes back to this driver, which then reads its state without
// a round trip. A message whose state could not be stored is naked too
// and comes back with this delivery counted; the error says how many.
func (d *driver) GiveBack(ctx context.Context, queue string, ms []*pubsub.Received) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	now := time.Now()
	var all, owns, recs []stateWrite // all in the order given: the naks' order is the redeliveries'
	for _, r := range ms {
		if r.Lost() {
			continue
		}
		dv := r.AckID.(*delivery)
		dv.settle()
		if dv.from == recordState {
			d.records.hold(queue, dv.seq, false)
		}
		ds := dv.state
		ds.Uncounted++
		ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, now, dv.delivered, dv.published
		w := stateWrite{dv: dv, ds: ds}
		all = append(all, w)
		if dv.from == ownState {
			owns = append(owns, w)
		} else {
			recs = append(recs, w)
		}
	}
	unstored := 0
	for i, ok := range d.putStates(ctx, queue, owns) {
		if !ok {
			unstored++
			continue
		}
		d.givenBack.add(queue, owns[i].dv.seq, cachedState{ds: owns[i].ds, from: ownState})
	}
	for i, own := range d.writeRecords(ctx, queue, recs) {
		if own == nil {
			unstored++
			continue
		}
		d.closeRecord(recs[i].dv) // the new record supersedes the old
		d.givenBack.add(queue, recs[i].dv.seq, cachedState{ds: recs[i].ds, from: recordState, record: own})
	}
	d.sweepRecords(queue)
	errs := d.nakAll(ctx, all)
	if unstored > 0 {
		// Naked all the same: they come back at once rather than after
		// ack_wait, with this delivery counted either way.
		errs = append(errs, fmt.Errorf("delivery state of %d of %d messages not stored: they come back with this delivery counted as an attempt", unstored, len(all)))
	}
	return errors.Join(errs...)
}

// nakAll naks the messages of ws, the last one waiting for the server's
// answer (see nakAndWait).
func (d *driver) nakAll(ctx context.Context, ws []stateWrite) []error {
	var errs []error
	for i, w := range ws {
		var err error
		if i < len(ws)-1 {
			err = w.dv.msg.Nak()
		} else {
			err = d.nakAndWait(ctx, w.dv.msg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("nak: %w; the message comes back after ack_wait", err))
		}
	}
	return errs
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
//
// A message that came back from a give-back record and is still held
// gets its own state now, saying it is no longer waiting (see received):
// admin reads elsewhere count it in flight from then on.
func (d *driver) ExtendLeases(ctx context.Context, queue string, ms []*pubsub.Received) error {
	var (
		errs []error
		held []stateWrite
	)
	for _, r := range ms {
		if r.Lost() {
			continue
		}
		dv := r.AckID.(*delivery)
		if err := dv.msg.InProgress(); err != nil {
			errs = append(errs, err)
		}
		// dv.from is read under dv.mu: a settlement under way (settled
		// first) rewrites it.
		if !dv.mu.TryLock() {
			continue
		}
		if dv.settled || dv.from != recordState {
			dv.mu.Unlock()
			continue
		}
		ds := dv.state
		ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = false, time.Time{}, dv.delivered, dv.published
		held = append(held, stateWrite{dv: dv, ds: ds})
	}
	if len(held) > 0 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		stored := d.putStates(ctx, queue, held)
		for i, w := range held {
			if stored[i] {
				d.closeRecord(w.dv)
				d.records.hold(queue, w.dv.seq, false)
			}
			w.dv.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
