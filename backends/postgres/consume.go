package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// prefetchHold is how long a claimed message may wait in a backend for a
// subscription before it is released to the queue again. Claiming ahead
// keeps fast consumers busy without a round trip per message; releasing
// what waits too long keeps a backend whose consumers are slow or stuck
// from hoarding messages other backends could handle.
const prefetchHold = 200 * time.Millisecond

// claimed is a message claimed from the database and leased to this
// backend.
type claimed struct {
	seq        int64
	id         string
	queue      string
	payload    []byte
	metadata   []byte
	priority   int32
	retryCount int32
	createdAt  time.Time
	firstFail  *time.Time
	owner      string    // locked_by of the claim
	claimedAt  time.Time // local clock, for prefetchHold
	leaseUntil time.Time // local estimate, guarded by leases.mu
	lost       atomic.Bool
}

// subscriber hands out messages. Each queue with subscriptions has one
// fetcher (queueConsumer) that claims for all the queue's subscriptions
// of this backend.
type subscriber struct {
	d *Driver

	mu        sync.Mutex
	closed    bool
	closing   chan struct{} // closed first: subscriptions end
	stopFetch chan struct{} // closed after subscriptions ended: fetchers release and end
	consumers map[string]*queueConsumer
	subsWG    sync.WaitGroup
	fetchWG   sync.WaitGroup
}

func newSubscriber(d *Driver) *subscriber {
	return &subscriber{d: d, closing: make(chan struct{}), stopFetch: make(chan struct{}), consumers: map[string]*queueConsumer{}}
}

// Subscribe returns a channel delivering the queue's messages one at a
// time: the next comes after the previous one was acked or nacked. Every
// subscription of a queue, here and in other processes, competes for its
// messages. The channel is closed when ctx ends or the subscriber closes;
// a message held unsettled then goes back to the queue.
func (s *subscriber) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if err := s.d.checkOpen(); err != nil {
		return nil, fmt.Errorf("subscribe to queue %s: %w", queue, err)
	}
	if s.isClosed() {
		return nil, fmt.Errorf("subscribe to queue %s: %w", queue, pubsub.ErrClosed)
	}
	if err := s.d.ensureQueue(ctx, queue); err != nil {
		return nil, fmt.Errorf("subscribe to %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("subscribe to queue %s: %w", queue, pubsub.ErrClosed)
	}
	qc := s.consumers[queue]
	if qc == nil {
		qc = newQueueConsumer(s, queue)
		s.consumers[queue] = qc
		s.fetchWG.Add(1)
		go func() {
			defer s.fetchWG.Done()
			qc.run()
		}()
	}
	qc.mu.Lock()
	qc.subs++
	qc.mu.Unlock()
	s.subsWG.Add(1)
	s.mu.Unlock()
	s.d.startConsuming()

	out := make(chan *message.Message)
	go func() {
		defer s.subsWG.Done()
		defer close(out)
		qc.serve(ctx, out)
	}()
	return out, nil
}

func (s *subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close ends every subscription; messages they held go back to their
// queues. Later Subscribe calls fail with ErrClosed.
func (s *subscriber) Close() error { return s.close() }

func (s *subscriber) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.subsWG.Wait()
	close(s.stopFetch)
	s.fetchWG.Wait()
	if s.d.closed.Load() {
		return nil // the backend's Close writes what is left
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.d.settler.flushAll(ctx)
}

func (s *subscriber) consumer(queue string) *queueConsumer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consumers[queue]
}

// wake tells the queue's fetcher that messages may be ready.
func (s *subscriber) wake(queue string) {
	if qc := s.consumer(queue); qc != nil {
		qc.wake()
	}
}

// wakeAt tells the queue's fetcher that a message becomes ready at t.
func (s *subscriber) wakeAt(queue string, t time.Time) {
	if qc := s.consumer(queue); qc != nil {
		qc.setDue(t)
		qc.wake()
	}
}

func (s *subscriber) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, qc := range s.consumers {
		qc.wake()
	}
}

// queueConsumer claims one queue's messages for the backend's
// subscriptions of it and hands them out.
type queueConsumer struct {
	s     *subscriber
	d     *Driver
	queue string
	wakeC chan struct{}

	mu      sync.Mutex
	buf     []*claimed // claimed, waiting for a subscription, in delivery order
	waiters []chan *claimed
	subs    int
	due     time.Time // when a scheduled message becomes ready, if known

	// Delivery rate (messages/s), to size prefetching.
	delivered     int64
	rate          float64
	rateAt        time.Time
	rateDelivered int64
}

func newQueueConsumer(s *subscriber, queue string) *queueConsumer {
	return &queueConsumer{s: s, d: s.d, queue: queue, wakeC: make(chan struct{}, 1), rateAt: time.Now()}
}

func (qc *queueConsumer) wake() {
	select {
	case qc.wakeC <- struct{}{}:
	default:
	}
}

// next returns the next message for a subscription, waiting for one.
func (qc *queueConsumer) next(ctx context.Context) (*claimed, bool) {
	qc.mu.Lock()
	for len(qc.buf) > 0 {
		c := qc.buf[0]
		qc.buf = qc.buf[1:]
		if c.lost.Load() {
			continue
		}
		qc.delivered++
		qc.mu.Unlock()
		return c, true
	}
	w := make(chan *claimed, 1)
	qc.waiters = append(qc.waiters, w)
	qc.mu.Unlock()
	qc.wake()
	select {
	case c := <-w:
		return c, true
	case <-ctx.Done():
	case <-qc.s.closing:
	}
	qc.mu.Lock()
	qc.waiters = slices.DeleteFunc(qc.waiters, func(x chan *claimed) bool { return x == w })
	select {
	case c := <-w:
		// Handed over while we were leaving: back to the front.
		qc.delivered--
		qc.buf = append([]*claimed{c}, qc.buf...)
	default:
	}
	qc.mu.Unlock()
	qc.wake()
	return nil, false
}

// serve runs one subscription: one message at a time, settled before the
// next.
func (qc *queueConsumer) serve(ctx context.Context, out chan<- *message.Message) {
	defer func() {
		qc.mu.Lock()
		qc.subs--
		qc.mu.Unlock()
		qc.wake() // with no subscriptions left, buffered messages go back
	}()
	for {
		c, ok := qc.next(ctx)
		if !ok {
			return
		}
		if !qc.deliver(ctx, c, out) {
			return
		}
	}
}

// deliver hands c to the subscription and settles it as its consumer
// says. It returns false when the subscription ends.
func (qc *queueConsumer) deliver(ctx context.Context, c *claimed, out chan<- *message.Message) bool {
	st := qc.d.settler
	msg := message.NewMessage(c.id, c.payload)
	if len(c.metadata) > 2 { // "{}"
		if err := json.Unmarshal(c.metadata, &msg.Metadata); err != nil {
			qc.d.log.Warn("quantumflow: postgres: bad metadata", "queue", qc.queue, "id", c.id, "error", err)
		}
	}
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)
	d := &pubsub.Delivery{Queue: qc.queue, Attempt: int(c.retryCount) + 1}
	if c.firstFail != nil {
		d.FirstFailureAt = *c.firstFail
	}
	pubsub.AttachDelivery(msg, d)

	select {
	case out <- msg:
	case <-ctx.Done():
		qc.d.leases.remove(c)
		st.requeue(c, 0, false, false, "")
		return false
	case <-qc.s.closing:
		qc.d.leases.remove(c)
		st.requeue(c, 0, false, false, "")
		return false
	}

	settle := func(acked bool) {
		qc.d.leases.remove(c)
		o := d.Outcome()
		switch {
		case o.DeadLetter != nil:
			st.deadLetter(c, o.DeadLetter)
		case acked:
			st.ack(c)
		case o.Retry:
			st.requeue(c, o.RetryDelay, true, true, o.LastError)
		default:
			st.requeue(c, 0, true, true, o.LastError)
		}
	}
	select {
	case <-msg.Acked():
		settle(true)
		return true
	case <-msg.Nacked():
		settle(false)
		return true
	case <-ctx.Done():
	case <-qc.s.closing:
	}
	// The subscription ends with the message unsettled, unless the
	// consumer settled it just before: that settle is honoured.
	select {
	case <-msg.Acked():
		settle(true)
	case <-msg.Nacked():
		settle(false)
	default:
		qc.d.leases.remove(c)
		st.requeue(c, 0, true, false, "")
	}
	return false
}

// run is the fetcher: it claims messages when subscriptions wait (and
// ahead of them while they consume fast), and releases claimed messages
// nobody took in time.
func (qc *queueConsumer) run() {
	d := qc.d
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-qc.s.stopFetch:
			qc.releaseBuffered()
			return
		default:
		}
		stale, need := qc.plan()
		for _, c := range stale {
			d.leases.remove(c)
			d.settler.requeue(c, 0, false, false, "")
		}
		select {
		case <-qc.s.closing:
			need = 0
		default:
		}
		var wait time.Duration
		if need > 0 {
			got, err := qc.claim(need)
			if err != nil {
				if d.ctx.Err() == nil {
					d.log.Warn("quantumflow: postgres: claim failed; retrying", "queue", qc.queue, "error", d.wrapErr(qc.queue, err), "retry_in", backoff)
				}
				wait = backoff
				backoff = min(2*backoff, 5*time.Second)
			} else {
				backoff = 100 * time.Millisecond
				qc.handOut(got)
				if len(got) == need {
					continue // more may be ready
				}
				// The queue has nothing more ready: sleep until woken (a
				// notification, a subscription asking, a poll, the next
				// scheduled message).
				if due, ok := qc.nextDue(); ok {
					qc.setDue(due)
				}
				wait = qc.waitTime()
			}
		} else {
			wait = qc.waitTime()
		}
		timer.Reset(wait)
		select {
		case <-qc.s.stopFetch:
		case <-qc.wakeC:
		case <-timer.C:
		}
	}
}

func (qc *queueConsumer) setDue(t time.Time) {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if qc.due.IsZero() || t.Before(qc.due) {
		qc.due = t
	}
}

// plan looks at the subscriptions and the buffer: which buffered messages
// waited too long, and how many messages to claim now.
func (qc *queueConsumer) plan() (stale []*claimed, need int) {
	now := time.Now()
	qc.mu.Lock()
	defer qc.mu.Unlock()
	// Drop lost leases and release what waited too long (everything when
	// no subscription is left).
	keep := qc.buf[:0]
	for _, c := range qc.buf {
		switch {
		case c.lost.Load():
		case qc.subs == 0 || now.Sub(c.claimedAt) >= prefetchHold:
			stale = append(stale, c)
		default:
			keep = append(keep, c)
		}
	}
	clear(qc.buf[len(keep):])
	qc.buf = keep

	if dt := now.Sub(qc.rateAt); dt >= 20*time.Millisecond {
		inst := float64(qc.delivered-qc.rateDelivered) / dt.Seconds()
		qc.rate = 0.5*qc.rate + 0.5*inst
		qc.rateAt, qc.rateDelivered = now, qc.delivered
	}
	waiting, buffered := len(qc.waiters), len(qc.buf)
	// Claim ahead about a quarter of prefetchHold's worth of deliveries at
	// the current rate, and at least what waiting subscriptions need.
	target := min(qc.d.cfg.batch, max(waiting, int(qc.rate*prefetchHold.Seconds()/4)))
	if waiting > 0 || (qc.subs > 0 && target > 1 && buffered < target/2) {
		need = min(max(target-buffered, waiting), qc.d.cfg.batch)
	}
	return stale, need
}

// waitTime is how long the fetcher may sleep: until the next poll, the
// next scheduled message, or the oldest buffered message's hold time.
func (qc *queueConsumer) waitTime() time.Duration {
	now := time.Now()
	qc.mu.Lock()
	defer qc.mu.Unlock()
	wait := time.Hour
	if qc.subs > 0 {
		wait = qc.d.cfg.pollInterval
	}
	if !qc.due.IsZero() {
		if dueIn := qc.due.Sub(now); dueIn <= 0 {
			qc.due = time.Time{}
			wait = 0
		} else {
			wait = min(wait, dueIn)
		}
	}
	if len(qc.buf) > 0 {
		wait = min(wait, max(0, qc.buf[0].claimedAt.Add(prefetchHold).Sub(now)))
	}
	return wait
}

// handOut gives claimed messages to waiting subscriptions, buffering the
// rest.
func (qc *queueConsumer) handOut(got []*claimed) {
	if len(got) == 0 {
		return
	}
	qc.mu.Lock()
	defer qc.mu.Unlock()
	for _, c := range got {
		if len(qc.waiters) > 0 {
			w := qc.waiters[0]
			qc.waiters = qc.waiters[1:]
			qc.delivered++
			w <- c
			continue
		}
		qc.buf = append(qc.buf, c)
	}
	// A later claim may have found messages that go before buffered ones.
	slices.SortStableFunc(qc.buf, deliveryOrder)
}

// deliveryOrder orders claimed messages as the claim does: priority
// first, then oldest, then publish order.
func deliveryOrder(a, b *claimed) int {
	switch {
	case a.priority != b.priority:
		return int(b.priority) - int(a.priority)
	case !a.createdAt.Equal(b.createdAt):
		return a.createdAt.Compare(b.createdAt)
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// releaseBuffered returns every buffered message to the queue.
func (qc *queueConsumer) releaseBuffered() {
	qc.mu.Lock()
	buf := qc.buf
	qc.buf = nil
	qc.mu.Unlock()
	for _, c := range buf {
		if c.lost.Load() {
			continue
		}
		qc.d.leases.remove(c)
		qc.d.settler.requeue(c, 0, false, false, "")
	}
}

// claimSeq numbers claims, to make lease owners unique.
var claimSeq atomic.Uint64

// claim leases up to n messages, writing waiting settlements in the same
// transaction.
func (qc *queueConsumer) claim(n int) ([]*claimed, error) {
	d := qc.d
	owner := d.instance + ":" + strconv.FormatUint(claimSeq.Add(1), 36)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()

	pb := &pgx.Batch{}
	sb := d.settler.takeForClaim()
	settles := 0
	if sb != nil {
		settles = sb.queue(pb, &d.q)
	}
	pb.Queue(d.q.claim, qc.queue, n, d.cfg.lease.Milliseconds(), owner)
	br := d.pool.SendBatch(ctx, pb)
	var err error
	for range settles {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	var got []*claimed
	if err == nil {
		got, err = qc.scanClaimed(br, owner, start)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if sb != nil {
			d.settler.putBack(sb, isConnectionError(err))
		}
		return nil, err
	}
	if sb != nil {
		d.settler.committed(sb)
	}
	slices.SortFunc(got, deliveryOrder)
	d.leases.add(got)
	return got, nil
}

func (qc *queueConsumer) scanClaimed(br pgx.BatchResults, owner string, start time.Time) ([]*claimed, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*claimed
	for rows.Next() {
		c := &claimed{queue: qc.queue, owner: owner, claimedAt: start, leaseUntil: start.Add(qc.d.cfg.lease)}
		if err := rows.Scan(&c.seq, &c.id, &c.payload, &c.metadata, &c.priority, &c.retryCount, &c.createdAt, &c.firstFail); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// nextDue asks when the queue's next scheduled message becomes ready.
func (qc *queueConsumer) nextDue() (time.Time, bool) {
	ctx, cancel := context.WithTimeout(qc.d.ctx, 10*time.Second)
	defer cancel()
	var due *time.Time
	if err := qc.d.pool.QueryRow(ctx, qc.d.q.nextDue, qc.queue).Scan(&due); err != nil || due == nil {
		return time.Time{}, false
	}
	return *due, true
}
