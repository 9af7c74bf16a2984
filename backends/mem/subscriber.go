package mem

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// subscriber is a backend's Watermill subscriber.
type subscriber struct {
	d *driver

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup
}

var _ message.Subscriber = (*subscriber)(nil)

// Subscribe starts a subscription competing for queue's messages. It ends,
// closing its channel, when ctx is done or the subscriber closes.
func (s *subscriber) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("subscribe to %s: %w", queue, pubsub.ErrClosed)
	}
	sub := &subscription{
		ctx:     ctx,
		q:       s.d.st.queue(queue),
		out:     make(chan *message.Message),
		closing: s.closing,
		w:       &waiter{wake: make(chan struct{}, 1)},
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		sub.run()
	}()
	return sub.out, nil
}

// Close ends every subscription and returns once their channels are
// closed and the messages they held are back in their queues. It is
// idempotent.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}

// subscription is one Subscribe call: one message at a time.
type subscription struct {
	ctx     context.Context
	q       *queue
	out     chan *message.Message
	closing <-chan struct{}
	w       *waiter
}

func (s *subscription) run() {
	defer close(s.out)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.closing:
			return
		default:
		}
		e := s.q.take(s.w)
		if e == nil {
			select {
			case <-s.w.wake:
				continue
			case <-s.ctx.Done():
			case <-s.closing:
			}
			s.q.leave(s.w)
			return
		}
		if !s.deliver(e) {
			return
		}
	}
}

// deliver hands e to the consumer and settles it. It returns false when
// the subscription ended meanwhile (e is then back in its queue).
func (s *subscription) deliver(e *entry) bool {
	msg := message.NewMessage(e.id, bytes.Clone(e.payload))
	if e.metadata != nil {
		msg.Metadata = maps.Clone(e.metadata)
	}
	d := &pubsub.Delivery{Queue: s.q.name, Attempt: e.attempts, FirstFailureAt: e.firstFailure}
	// Done once settled, or when the subscription ends (watched below).
	ctx := pubsub.NewDeliveryContext(s.ctx, d)
	defer ctx.End()
	msg.SetContext(ctx)

	select {
	case s.out <- msg:
	case <-s.ctx.Done():
		s.q.putBack(e, false)
		return false
	case <-s.closing:
		s.q.putBack(e, false)
		return false
	}

	select {
	case <-msg.Acked():
		s.settle(e, d, true)
		return true
	case <-msg.Nacked():
		s.settle(e, d, false)
		return true
	case <-s.ctx.Done():
	case <-s.closing:
	}
	// An Ack or Nack that came before the end is honoured: a router acks
	// and then shuts down.
	select {
	case <-msg.Acked():
		s.settle(e, d, true)
	case <-msg.Nacked():
		s.settle(e, d, false)
	default:
		s.q.putBack(e, true)
	}
	return false
}

// settle carries out an Ack or Nack as the Delivery's outcome says.
func (s *subscription) settle(e *entry, d *pubsub.Delivery, acked bool) {
	out := d.Outcome()
	switch {
	case out.DeadLetter != nil:
		s.q.deadLetter(e, *out.DeadLetter, out.LastError)
	case acked:
		s.q.ack(e)
	case out.Retry:
		s.q.nack(e, out.RetryDelay, out.LastError)
	default:
		s.q.nack(e, 0, out.LastError)
	}
}
