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
	"github.com/jackc/pgx/v5/pgtype"

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
	firstFail  pgtype.Timestamptz
	owner      string    // locked_by of the claim
	claimedAt  time.Time // local clock, for prefetchHold
	batch      *leaseBatch
	done       atomic.Bool // settled or released: no longer leased here
	lost       atomic.Bool // the lease was found taken over
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
	ctx, cancel := context.WithTimeout(s.d.workCtx, 10*time.Second)
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

	// How many messages to hold ready for the subscriptions: doubled when
	// they emptied the previous claim quickly and had to wait, back to one
	// when claimed messages waited too long. Independent of how long a claim
	// takes, so a slow database does not shrink the batches.
	target    int
	emptiedAt time.Time // when a subscription last found nothing buffered
	handedAt  time.Time // when the last claim's messages were handed out
	nextDueAt time.Time // when nextDue may be asked again

	// Claims in flight and finished.
	claims     sync.WaitGroup
	doneC      chan struct{}
	inflight   int // claims running
	unlocked   int // claims running that do not hold their rows yet
	incoming   int // messages they asked for
	nextTicket uint64
	nextResult uint64
	results    map[uint64]claimResult
	idle       bool          // the last claim found the queue empty
	paused     int           // withdraw calls in progress: no claims
	wakes      atomic.Uint64 // wake-ups so far: one during a claim outdates its emptiness
	retryAt    time.Time     // after a failed claim, not before
	backoff    time.Duration // before the next retry of a failed claim
}

func newQueueConsumer(s *subscriber, queue string) *queueConsumer {
	return &queueConsumer{s: s, d: s.d, queue: queue, wakeC: make(chan struct{}, 1), target: 1,
		doneC: make(chan struct{}, 1), results: map[uint64]claimResult{}, backoff: 100 * time.Millisecond}
}

func (qc *queueConsumer) wake() {
	qc.wakes.Add(1)
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
		// Running low: have the fetcher claim more before subscriptions
		// have to wait for it.
		low := qc.target > 1 && len(qc.buf) < qc.target
		qc.mu.Unlock()
		if low {
			// Not a wake-up: nothing new may be in the queue.
			qc.signalDone()
		}
		return c, true
	}
	w := make(chan *claimed, 1)
	if len(qc.waiters) == 0 {
		qc.emptiedAt = time.Now()
	}
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
	if c.metadata != nil {
		if err := json.Unmarshal(c.metadata, &msg.Metadata); err != nil {
			qc.d.log.Warn("quantumflow: postgres: bad metadata", "queue", qc.queue, "id", c.id, "error", err)
		}
	}
	d := &pubsub.Delivery{Queue: qc.queue, Attempt: int(c.retryCount) + 1}
	if c.firstFail.Valid {
		d.FirstFailureAt = c.firstFail.Time
	}
	// Done once settled, or when the subscription ends (this loop watches
	// ctx and closing while the message is out, and returns).
	msgCtx := pubsub.NewDeliveryContext(ctx, d)
	defer msgCtx.End()
	msg.SetContext(msgCtx)

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

// claimsInFlight is how many claims of one queue a backend runs at once:
// while one is on its way, another keeps fast subscriptions fed. With
// sync_acks every claim also waits for its commit's flush to disk (it
// carries the acks), so more of them overlap, as many as the raw loop's
// four workers: with two, four subscriptions consumed 70-120k msg/s, with
// four 118-122k (same run, busy 2-core machine). Without sync_acks a
// claim's commit does not wait for the disk, and two keep up.
func (d *Driver) claimsInFlight() int {
	if d.cfg.syncAcks {
		return 4
	}
	return 2
}

// claimResult is a finished claim.
type claimResult struct {
	wakes uint64 // qc.wakes when the claim started
	need  int
	got   []*claimed
	err   error
}

// run is the fetcher: it claims messages when subscriptions wait (and
// ahead of them while they consume fast), hands them out in claim order,
// and releases claimed messages nobody took in time.
func (qc *queueConsumer) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-qc.s.stopFetch:
			qc.claims.Wait()
			qc.takeResults()
			qc.releaseBuffered()
			return
		default:
		}
		qc.takeResults()
		wakes := qc.wakes.Load()
		stale, need, ticket := qc.plan()
		if len(stale) > 0 {
			qc.release(stale)
		}
		if need > 0 {
			qc.claims.Add(1)
			go func() {
				defer qc.claims.Done()
				var once sync.Once
				locked := func() {
					once.Do(func() {
						qc.mu.Lock()
						qc.unlocked--
						qc.mu.Unlock()
						qc.signalDone()
					})
				}
				got, err := qc.claim(need, locked)
				locked()
				qc.mu.Lock()
				qc.results[ticket] = claimResult{wakes: wakes, need: need, got: got, err: err}
				qc.mu.Unlock()
				qc.signalDone()
			}()
			continue
		}
		timer.Reset(qc.waitTime())
		select {
		case <-qc.s.stopFetch:
		case <-qc.doneC:
		case <-qc.wakeC:
			qc.setIdle(false)
		case <-timer.C:
			qc.setIdle(false)
		}
	}
}

// takeResults hands out the messages of finished claims, in the order the
// claims were started, so that a later claim finishing first cannot
// overtake an earlier one.
func (qc *queueConsumer) takeResults() {
	for {
		qc.mu.Lock()
		r, ok := qc.results[qc.nextResult]
		if ok {
			delete(qc.results, qc.nextResult)
			qc.nextResult++
		}
		qc.mu.Unlock()
		if !ok {
			return
		}
		qc.takeResult(r)
		// Counted out only now that its messages are handed out or
		// buffered (withdraw waits for that).
		qc.mu.Lock()
		qc.inflight--
		qc.incoming -= r.need
		qc.mu.Unlock()
	}
}

// takeResult hands out one claim's messages, or schedules the retry of a
// failed claim.
func (qc *queueConsumer) takeResult(r claimResult) {
	d := qc.d
	if r.err != nil {
		qc.mu.Lock()
		qc.retryAt = time.Now().Add(qc.backoff)
		backoff := qc.backoff
		qc.backoff = min(2*qc.backoff, 5*time.Second)
		qc.mu.Unlock()
		if d.ctx.Err() == nil {
			d.log.Warn("quantumflow: postgres: claim failed; retrying", "queue", qc.queue, "error", d.wrapErr(qc.queue, r.err), "retry_in", backoff)
		}
		return
	}
	full := len(r.got) == r.need
	qc.mu.Lock()
	qc.backoff = 100 * time.Millisecond
	qc.mu.Unlock()
	qc.handOut(r.got, full)
	if !full && qc.wakes.Load() == r.wakes {
		// The queue has nothing more ready: claim again when woken (a
		// notification, a subscription asking, a poll, the next scheduled
		// message). A wake-up during the claim may be about a message it
		// could not see: then claim again at once.
		qc.setIdle(true)
		if due, ok := qc.nextDue(); ok {
			qc.setDue(due)
		}
	}
}

func (qc *queueConsumer) signalDone() {
	select {
	case qc.doneC <- struct{}{}:
	default:
	}
}

func (qc *queueConsumer) setIdle(idle bool) {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	qc.idle = idle
}

func (qc *queueConsumer) setDue(t time.Time) {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if qc.due.IsZero() || t.Before(qc.due) {
		qc.due = t
	}
}

// plan looks at the subscriptions, the buffer and the claims in flight:
// which buffered messages waited too long, and whether to start a claim
// (of need messages, with the ticket that orders its hand-out).
func (qc *queueConsumer) plan() (stale []*claimed, need int, ticket uint64) {
	now := time.Now()
	qc.mu.Lock()
	defer qc.mu.Unlock()
	// Drop lost leases. When a buffered message waited too long (or no
	// subscription is left), release the whole buffer: releasing only the
	// stale ones would let newer messages overtake them. And only with no
	// claim in flight, whose messages would overtake them too.
	keep := qc.buf[:0]
	release := qc.subs == 0
	for _, c := range qc.buf {
		if c.lost.Load() {
			continue
		}
		keep = append(keep, c)
		release = release || now.Sub(c.claimedAt) >= prefetchHold
	}
	clear(qc.buf[len(keep):])
	qc.buf = keep
	if release && len(qc.buf) > 0 {
		if qc.inflight > 0 {
			return nil, 0, 0
		}
		stale, qc.buf = qc.buf, nil
		// Consumers slowed down or stopped: no claiming ahead until they
		// show again that they are fast. (Halving would claim ahead again
		// at once, and hold messages away from other backends again.)
		qc.target = 1
	}
	select {
	case <-qc.s.closing:
		return stale, 0, 0
	default:
	}
	// A claim starts only once the claims in flight hold their rows.
	// Started together, they would race for the same rows, each walking
	// past the rows the other locks (SKIP LOCKED): more CPU per message
	// (11-12 against 10.5-11 microseconds, four subscriptions), and
	// a subscription would see the two claims' messages out of order.
	locking := qc.unlocked > 0
	if qc.idle || qc.paused > 0 || qc.inflight >= qc.d.claimsInFlight() || locking || now.Before(qc.retryAt) {
		return stale, 0, 0
	}
	waiting, avail := len(qc.waiters), len(qc.buf)+qc.incoming
	// Claim for subscriptions that wait and no claim in flight serves, and
	// ahead of them while there is less than two claims' worth at hand.
	switch {
	case waiting > qc.incoming:
		need = min(max(qc.target-avail, waiting-qc.incoming), qc.d.cfg.batch)
	case qc.subs > 0 && qc.target > 1 && avail < 2*qc.target:
		need = qc.target
	default:
		return stale, 0, 0
	}
	qc.inflight++
	qc.unlocked++
	qc.incoming += need
	ticket = qc.nextTicket
	qc.nextTicket++
	return stale, need, ticket
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
	if qc.retryAt.After(now) {
		wait = min(wait, qc.retryAt.Sub(now))
	}
	return wait
}

// handOut gives claimed messages to waiting subscriptions, buffering the
// rest.
//
// Subscriptions waiting when a full claim arrives had emptied the buffer
// before it came: if they did so quickly after the previous claim (fast
// consumers, not a pause), the fetcher claims twice as many from now on.
func (qc *queueConsumer) handOut(got []*claimed, full bool) {
	if len(got) == 0 {
		return
	}
	now := time.Now()
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if full && len(qc.waiters) > 0 && qc.emptiedAt.Sub(qc.handedAt) < prefetchHold/4 {
		qc.target = min(qc.d.cfg.batch, 2*qc.target)
	}
	qc.handedAt = now
	for _, c := range got {
		if len(qc.waiters) > 0 {
			w := qc.waiters[0]
			qc.waiters = qc.waiters[1:]
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

// release returns claimed messages to the queue now, before the next
// claim, so that it finds them again in order.
func (qc *queueConsumer) release(cs []*claimed) {
	d := qc.d
	b := &settleBatch{}
	for _, c := range cs {
		d.leases.remove(c)
		b.addRequeue(c, 0, false, false, "")
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if err := d.settler.write(ctx, b); err != nil {
		// The settle writer retries; order may suffer, nothing is lost.
		d.settler.putBack(b, isConnectionError(err))
		return
	}
	d.settler.committed(b)
}

// withdraw returns the messages this backend claimed ahead and has not
// handed out yet to the queue, and stops claiming ahead until the
// subscriptions show again that they consume fast. Admin reads call it
// first, so that what they report of the queue is what its consumers then
// receive, not a moment of this backend's prefetching.
func (qc *queueConsumer) withdraw(ctx context.Context) {
	qc.mu.Lock()
	qc.paused++
	qc.mu.Unlock()
	defer func() {
		qc.mu.Lock()
		qc.paused--
		qc.mu.Unlock()
		qc.signalDone()
	}()
	// Claims in flight land first: their messages come after the buffered
	// ones, and must go back with them.
	for {
		qc.mu.Lock()
		n := qc.inflight
		qc.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
	qc.mu.Lock()
	buf := qc.buf
	qc.buf = nil
	qc.target = 1
	qc.mu.Unlock()
	var cs []*claimed
	for _, c := range buf {
		if !c.lost.Load() {
			cs = append(cs, c)
		}
	}
	if len(cs) > 0 {
		qc.release(cs)
	}
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

// claimSettings steers the claim of the same transaction to the claim
// index (see claim), and has it use its generic plan: a custom plan per
// claim cost 75 microseconds of planning every time, the generic plan is
// the same index walk.
const claimSettings = `SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)`

// claimSeq numbers claims, to make lease owners unique.
var claimSeq atomic.Uint64

// claim leases up to n messages, writing waiting settlements in the same
// transaction.
//
// locked is called once the claimed rows are locked (their results read),
// before the commit.
func (qc *queueConsumer) claim(n int, locked func()) ([]*claimed, error) {
	d := qc.d
	owner := d.instance + ":" + strconv.FormatUint(claimSeq.Add(1), 36)
	ctx, cancel := context.WithTimeout(d.workCtx, 30*time.Second)
	defer cancel()
	start := time.Now()

	pb := &pgx.Batch{}
	pb.Queue("BEGIN")
	d.queueSettleCommitMode(pb)
	sb := d.settler.takeForClaim()
	settles := 0
	if sb != nil {
		settles = sb.queue(pb, &d.q)
	}
	// The claim must walk the queue index in delivery order and stop
	// after n rows. Without fresh statistics (a new table loaded faster
	// than autovacuum analyzes it) the planner guesses a handful of rows
	// and sorts the whole queue instead: 2 ms became 70 ms at 100k rows.
	pb.Queue(claimSettings)
	pb.Queue(d.q.claim, qc.queue, n, d.cfg.lease.Milliseconds(), owner)
	pb.Queue("COMMIT")
	// One round trip and one commit for the settles and the claim.
	br := d.pool.SendBatch(ctx, pb)
	_, err := br.Exec() // BEGIN
	for i := 0; err == nil && i < settles+1+d.settleCommitStatements(); i++ {
		_, err = br.Exec()
	}
	var got []*claimed
	if err == nil {
		got, err = qc.scanClaimed(br, n, owner, start)
	}
	if err == nil {
		locked()
		_, err = br.Exec() // COMMIT
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
	d.leases.add(got, start.Add(d.cfg.lease))
	return got, nil
}

func (qc *queueConsumer) scanClaimed(br pgx.BatchResults, n int, owner string, start time.Time) ([]*claimed, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// One allocation for the claim's messages (they are settled and
	// forgotten together, give or take a few), not one each.
	slab := make([]claimed, 0, n)
	out := make([]*claimed, 0, n)
	for rows.Next() {
		slab = append(slab, claimed{queue: qc.queue, owner: owner, claimedAt: start})
		c := &slab[len(slab)-1]
		if err := rows.Scan(&c.seq, &c.id, &c.payload, &c.metadata, &c.priority, &c.retryCount, &c.createdAt, &c.firstFail); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// nextDue asks when the queue's next scheduled message becomes ready.
func (qc *queueConsumer) nextDue() (time.Time, bool) {
	// It reads every waiting row of the queue: at most once per poll
	// interval. Retries scheduled by this backend wake it anyway (wakeAt).
	now := time.Now()
	qc.mu.Lock()
	skip := now.Before(qc.nextDueAt)
	if !skip {
		qc.nextDueAt = now.Add(qc.d.cfg.pollInterval)
	}
	qc.mu.Unlock()
	if skip {
		return time.Time{}, false
	}
	ctx, cancel := context.WithTimeout(qc.d.ctx, 10*time.Second)
	defer cancel()
	var due *time.Time
	if err := qc.d.pool.QueryRow(ctx, qc.d.q.nextDue, qc.queue).Scan(&due); err != nil || due == nil {
		return time.Time{}, false
	}
	return *due, true
}
