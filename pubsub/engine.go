package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// engine implements Watermill's Publisher and Subscriber once, over a
// Driver: what every backend shares is written here, what each does its
// own way stays in the driver.
type engine struct {
	d      Driver
	tuning Tuning
	log    *slog.Logger

	// publishing is held shared by every Publish in progress, so that
	// Close waits for them: a Publish that returned nil is stored.
	publishing sync.RWMutex
	pubClosed  bool // guarded by publishing

	mu        sync.Mutex
	closed    bool          // the backend is closed
	subClosed bool          // the subscriber is closed
	closing   chan struct{} // closed with the subscriber: subscriptions end
	receivers map[string]*receiver
	subs      sync.WaitGroup // subscriptions running
	recvs     sync.WaitGroup // receivers running

	settles settleQueues
	leases  chan struct{} // closed to stop lease extension
	leaseWG sync.WaitGroup

	pauses pauses
}

func newEngine(d Driver, log *slog.Logger) *engine {
	t := d.Tuning()
	t.MaxBatch = max(t.MaxBatch, 1)
	t.ReceivesInFlight = max(t.ReceivesInFlight, 1)
	if t.PrefetchHold <= 0 {
		t.PrefetchHold = 200 * time.Millisecond
	}
	e := &engine{d: d, tuning: t, log: log, closing: make(chan struct{}), receivers: map[string]*receiver{}, leases: make(chan struct{})}
	e.settles.init(e)
	e.startPauses()
	if le, ok := d.(LeaseExtender); ok {
		e.leaseWG.Add(1)
		go func() {
			defer e.leaseWG.Done()
			e.extendLeases(le)
		}()
	}
	return e
}

// wrap gives a driver error the one shape every backend shares:
// "op queue Q: sentinel: driver's text", where the sentinel follows from
// the driver's ErrorCode.
func (e *engine) wrap(op, queue string, err error) error {
	if err == nil {
		return nil
	}
	where := op
	if queue != "" {
		where = op + " queue " + queue
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", where, err)
	}
	// A deadline may be the caller's or a driver's own retry budget: the
	// driver's ErrorCode says which (CodeCanceled, or CodeUnavailable).
	s := e.d.ErrorCode(err).sentinel()
	if s == nil || errors.Is(err, s) {
		return fmt.Errorf("%s: %w", where, err)
	}
	return fmt.Errorf("%s: %w: %w", where, s, err)
}

// Publish stores msgs on queue and returns once the backend holds them
// durably (as it defines durability). The first message's context bounds
// the call: when it is done already, nothing is stored and its error is
// returned.
func (e *engine) Publish(queue string, msgs ...*message.Message) error {
	if err := ValidateQueueName(queue); err != nil {
		return err
	}
	limit := e.maxPayload()
	for _, m := range msgs {
		if err := ValidateMessage(m, limit); err != nil {
			return fmt.Errorf("publish to queue %s: %w", queue, err)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx := msgs[0].Context()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish to queue %s: %w", queue, err)
	}
	e.publishing.RLock()
	defer e.publishing.RUnlock()
	if e.pubClosed {
		return fmt.Errorf("publish to queue %s: %w", queue, ErrClosed)
	}
	return e.wrap("publish to", queue, e.d.SendBatch(ctx, queue, msgs))
}

// maxPayload is the driver's payload limit, 0 when it has none.
func (e *engine) maxPayload() int {
	if l, ok := e.d.(PayloadLimiter); ok {
		return l.MaxPayload()
	}
	return 0
}

func (e *engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *engine) subscriberClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.subClosed
}

// Subscribe starts a subscription to queue. Every subscription of a queue,
// here and in other processes, competes for its messages; each holds one
// message at a time, the next coming once the previous is acked or
// nacked. The channel closes when ctx is done or the backend closes; a
// message held unsettled then goes back to its queue.
func (e *engine) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if e.subscriberClosed() {
		return nil, fmt.Errorf("subscribe to queue %s: %w", queue, ErrClosed)
	}
	if err := e.d.EnsureQueue(ctx, queue); err != nil {
		return nil, e.wrap("subscribe to", queue, err)
	}
	e.refreshPausesIfOld(ctx)
	e.mu.Lock()
	if e.subClosed {
		e.mu.Unlock()
		return nil, fmt.Errorf("subscribe to queue %s: %w", queue, ErrClosed)
	}
	r := e.receivers[queue]
	if r == nil {
		r = newReceiver(e, queue)
		r.halted = e.pauses.paused(queue)
		e.receivers[queue] = r
		e.recvs.Add(1)
		go func() {
			defer e.recvs.Done()
			r.run()
		}()
	}
	s := r.join(ctx)
	e.subs.Add(1)
	e.mu.Unlock()

	go func() {
		defer e.subs.Done()
		defer close(s.out)
		s.serve()
		// The channel closes once what the subscription held and, after
		// the last one, what its receiver held is back in the queue.
		if e.leave(r, s) {
			<-r.done
		}
	}()
	return s.out, nil
}

// leave ends a subscription; the receiver of a queue left with none stops
// and gives back what it holds. It reports whether it stopped it.
func (e *engine) leave(r *receiver, s *subscription) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.leave(s) == 0 && e.receivers[r.queue] == r {
		delete(e.receivers, r.queue)
		r.stop()
		return true
	}
	return false
}

// giveBackBuffered gives back the messages received ahead for queue and
// runs read while no more are received, so that what an admin read reports
// of the queue is what its consumers then get, not a moment of this
// backend's prefetching.
func (e *engine) giveBackBuffered(ctx context.Context, queue string, read func() error) error {
	e.mu.Lock()
	r := e.receivers[queue]
	e.mu.Unlock()
	if r == nil {
		return read()
	}
	return r.paused(ctx, read)
}

// closePublisher makes later publishes fail with ErrClosed, once those
// in progress finished.
func (e *engine) closePublisher() {
	e.publishing.Lock()
	e.pubClosed = true
	e.publishing.Unlock()
}

// closeSubscriber ends every subscription and makes later ones fail with
// ErrClosed. It returns once messages held unsettled and received ahead
// are given back and the settlements made are handed to the driver.
func (e *engine) closeSubscriber() {
	e.mu.Lock()
	if !e.subClosed {
		e.subClosed = true
		close(e.closing)
	}
	e.mu.Unlock()
	e.subs.Wait()
	e.recvs.Wait()
	e.settles.wait()
}

// close closes the publisher and the subscriber, then the driver.
func (e *engine) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.closePublisher()
	e.closeSubscriber()
	close(e.leases)
	e.leaseWG.Wait()
	e.stopPauses()
	return e.d.Close()
}

// enginePublisher and engineSubscriber are the engine's Watermill sides,
// each with a Close of its own: closing one stops it alone, the backend
// stays open for the other and for admin operations.
type enginePublisher struct{ e *engine }

func (p enginePublisher) Publish(queue string, msgs ...*message.Message) error {
	return p.e.Publish(queue, msgs...)
}

func (p enginePublisher) Close() error {
	p.e.closePublisher()
	return nil
}

type engineSubscriber struct{ e *engine }

func (s engineSubscriber) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	return s.e.Subscribe(ctx, queue)
}

func (s engineSubscriber) Close() error {
	s.e.closeSubscriber()
	return nil
}
