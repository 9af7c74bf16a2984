package pubsub

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// subscription is one Subscribe call: it hands its consumer one message
// at a time and settles it as the consumer says.
type subscription struct {
	r       *receiver
	ctx     context.Context
	out     chan *message.Message
	handed  chan *Received           // where the receiver hands it a message while it waits
	current atomic.Pointer[Received] // out with the consumer, for lease extension
}

func (s *subscription) serve() {
	for {
		m, ok := s.r.next(s)
		if !ok {
			return
		}
		if !s.deliver(m) {
			return
		}
	}
}

// deliver hands m to the consumer and settles it. It returns false when
// the subscription ended meanwhile.
func (s *subscription) deliver(m *Received) bool {
	e := s.r.e
	msg := message.NewMessage(m.ID, m.Payload)
	if m.Metadata != nil {
		msg.Metadata = m.Metadata
	}
	d := &Delivery{Queue: s.r.queue, Attempt: m.Attempt, FirstFailureAt: m.FirstFailureAt, received: m}
	// Done once settled, or when the subscription ends (watched below).
	ctx := NewDeliveryContext(s.ctx, d)
	defer ctx.End()
	msg.SetContext(ctx)
	s.current.Store(m)
	defer s.current.Store(nil)

	select {
	case s.out <- msg:
	case <-s.ctx.Done():
		s.r.giveBack([]*Received{m})
		return false
	case <-e.closing:
		s.r.giveBack([]*Received{m})
		return false
	}
	select {
	case <-msg.Acked():
		e.settles.add(s.r.queue, settlementOf(m, d, true))
		return true
	case <-msg.Nacked():
		e.settles.add(s.r.queue, settlementOf(m, d, false))
		return true
	case <-s.ctx.Done():
	case <-e.closing:
	}
	// The subscription ends with the message out. An Ack or Nack that came
	// just before is honoured (a router acks, then shuts down).
	select {
	case <-msg.Acked():
		e.settles.add(s.r.queue, settlementOf(m, d, true))
	case <-msg.Nacked():
		e.settles.add(s.r.queue, settlementOf(m, d, false))
	default:
		e.settles.add(s.r.queue, Settlement{Msg: m, Action: SettleInterrupted})
	}
	return false
}

// settlementOf is how an acked or nacked delivery is settled, as the
// middleware asked through its Delivery.
func settlementOf(m *Received, d *Delivery, acked bool) Settlement {
	o := d.Outcome()
	switch {
	case o.DeadLetter != nil:
		return Settlement{Msg: m, Action: SettleDeadLetter, Error: o.LastError, DeadLetter: o.DeadLetter}
	case acked:
		return Settlement{Msg: m, Action: SettleAck}
	default:
		// A nack without a retry asked for is retried at once.
		return Settlement{Msg: m, Action: SettleRetry, Delay: o.RetryDelay, Error: o.LastError}
	}
}

// settleQueues batches settlements per queue: the first one made while
// no Settle of its queue runs is settled at once, by the goroutine that
// made it; those made meanwhile go together in the next call.
type settleQueues struct {
	e       *engine
	mu      sync.Mutex
	queues  map[string]*settleQueue
	running sync.WaitGroup
}

// settleQueue is one queue's settlements: pending ones, and the slice of
// the last batch, reused for the next (a driver must not keep the slice
// Settle was given).
type settleQueue struct {
	pending, spare []Settlement
	flushing       bool
}

func (q *settleQueues) init(e *engine) {
	q.e = e
	q.queues = map[string]*settleQueue{}
}

func (q *settleQueues) add(queue string, s Settlement) {
	q.mu.Lock()
	sq := q.queues[queue]
	if sq == nil {
		sq = &settleQueue{}
		q.queues[queue] = sq
	}
	sq.pending = append(sq.pending, s)
	if sq.flushing {
		q.mu.Unlock()
		return
	}
	sq.flushing = true
	q.running.Add(1)
	q.mu.Unlock()
	// One round here; if more came meanwhile, a goroutine of its own goes
	// on, so that this subscription is not kept settling for others.
	if q.flushOnce(queue, sq) {
		go q.flush(queue, sq)
	}
}

// flush settles queue's settlements until none is left.
func (q *settleQueues) flush(queue string, sq *settleQueue) {
	for q.flushOnce(queue, sq) {
	}
}

// flushOnce settles what is pending for queue and reports whether more
// came meanwhile; when not, the flush is over.
func (q *settleQueues) flushOnce(queue string, sq *settleQueue) bool {
	q.mu.Lock()
	batch := sq.pending
	sq.pending, sq.spare = sq.spare[:0], nil
	q.mu.Unlock()
	// No deadline of its own: the driver bounds its own calls, and a
	// context per settle cost as much as the rest of the settle.
	if err := q.e.d.Settle(context.Background(), queue, batch); err != nil {
		// Not lost: their leases run out and they are delivered again.
		q.e.log.Warn("quantumflow: settle failed; the messages are delivered again when their leases expire",
			slog.String("queue", queue), slog.Int("messages", len(batch)), slog.Any("error", q.e.wrap("settle in", queue, err)))
	}
	clear(batch)
	q.mu.Lock()
	defer q.mu.Unlock()
	sq.spare = batch[:0]
	if len(sq.pending) > 0 {
		return true
	}
	sq.flushing = false
	q.running.Done()
	return false
}

// wait returns once no settlement is pending.
func (q *settleQueues) wait() { q.running.Wait() }

// extendLeases extends the lease of every message the engine holds, each
// LeaseInterval, until the engine closes.
func (e *engine) extendLeases(le LeaseExtender) {
	t := time.NewTicker(le.LeaseInterval())
	defer t.Stop()
	for {
		select {
		case <-e.leases:
			return
		case <-t.C:
		}
		e.mu.Lock()
		rs := make([]*receiver, 0, len(e.receivers))
		for _, r := range e.receivers {
			rs = append(rs, r)
		}
		e.mu.Unlock()
		for _, r := range rs {
			ms := r.held()
			if len(ms) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), le.LeaseInterval())
			if err := le.ExtendLeases(ctx, r.queue, ms); err != nil {
				e.log.Warn("quantumflow: extending leases failed", slog.String("queue", r.queue), slog.Any("error", e.wrap("extend leases in", r.queue, err)))
			}
			cancel()
		}
	}
}
