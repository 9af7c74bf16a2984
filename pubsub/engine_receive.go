package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// receiver receives one queue's messages from the driver for the
// backend's subscriptions of it, and hands them out. It receives ahead of
// the subscriptions while they consume fast, and gives back what waits in
// its buffer longer than the prefetch hold.
type receiver struct {
	e      *engine
	queue  string
	ctx    context.Context // ends when the receiver stops
	cancel context.CancelFunc
	wakeC  chan struct{}
	done   chan struct{} // closed when run returns

	mu      sync.Mutex
	buf     []*Received // received, waiting for a subscription, in delivery order
	waiters []chan *Received
	subs    []*subscription

	// How many messages to hold ready for the subscriptions: doubled when
	// they emptied the previous batch quickly and had to wait, back to one
	// when received messages waited too long. Independent of how long a
	// receive takes, so a slow backend does not shrink the batches.
	target    int
	emptiedAt time.Time // when a subscription last found nothing buffered
	handedAt  time.Time // when the last batch was handed out

	// Receives in flight and finished.
	receives   sync.WaitGroup
	inflight   int                     // receives running or not yet taken
	ahead      int                     // of them, those that receive ahead
	unheld     int                     // receives running that do not hold their messages yet
	incoming   int                     // messages they asked for
	calls      map[uint64]*receiveCall // the receives running
	nextTicket uint64
	nextResult uint64
	results    map[uint64]receiveResult
	pauses     int  // admin reads in progress: no receives
	halted     bool // the queue is paused: no receives, nothing handed out
	retryAt    time.Time
	backoff    Backoff

	// Messages given back that no receive of this receiver has brought
	// back yet, by ID, each waited for up to givenBackWait. A backend may
	// redeliver them out of their order: JetStream redelivers in the order
	// of its naks, not of the queue, and puts a redelivery it could not
	// hand to a pull request (one whose client is gone) at the back. So
	// while any wait:
	//   - the receiver receives only what waiting subscriptions take at
	//     once (messages received ahead, then given back in their turn,
	//     would go behind the older ones still out);
	//   - a message that goes after one still out waits in the buffer
	//     (see blocked) until that one comes or its wait runs out.
	givenBack map[string]givenBackMsg
}

// givenBackMsg is a message given back, and until when its receiver waits
// for it.
type givenBackMsg struct {
	m     *Received
	until time.Time
}

// receiveCall is a ReceiveBatch running.
type receiveCall struct {
	cancel context.CancelFunc
	// ahead: it asked for more than the subscriptions waiting for it, so
	// some of what it brings is buffered.
	ahead bool
}

// receiveResult is a finished ReceiveBatch.
type receiveResult struct {
	need  int
	ahead bool
	got   []*Received
	err   error
}

func newReceiver(e *engine, queue string) *receiver {
	ctx, cancel := context.WithCancel(context.Background())
	return &receiver{e: e, queue: queue, ctx: ctx, cancel: cancel, wakeC: make(chan struct{}, 1), done: make(chan struct{}), target: 1,
		calls: map[uint64]*receiveCall{}, results: map[uint64]receiveResult{}}
}

// wake makes the run loop look at the receiver's state again.
func (r *receiver) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

// stop ends the receiver: its receives are cancelled and what it holds is
// given back. The engine calls it, under its lock, once the last
// subscription left.
func (r *receiver) stop() { r.cancel() }

// join adds a subscription.
func (r *receiver) join(ctx context.Context) *subscription {
	s := &subscription{r: r, ctx: ctx, out: make(chan *message.Message), handed: make(chan *Received, 1)}
	r.mu.Lock()
	r.subs = append(r.subs, s)
	r.mu.Unlock()
	return s
}

// leave removes a subscription and returns how many are left.
func (r *receiver) leave(s *subscription) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = slices.DeleteFunc(r.subs, func(x *subscription) bool { return x == s })
	r.wake()
	return len(r.subs)
}

// next returns the next message for s, waiting for one; false when s ends.
func (r *receiver) next(s *subscription) (*Received, bool) {
	r.mu.Lock()
	if m := r.pop(); m != nil {
		// Running low: receive more before subscriptions have to wait.
		low := r.target > 1 && len(r.buf) < r.target
		r.mu.Unlock()
		if low {
			r.wake()
		}
		return m, true
	}
	w := s.handed
	if len(r.waiters) == 0 && len(r.buf) == 0 {
		r.emptiedAt = time.Now()
	}
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	r.wake()
	select {
	case m := <-w:
		return m, true
	case <-s.ctx.Done():
	case <-r.e.closing:
	}
	r.mu.Lock()
	r.waiters = slices.DeleteFunc(r.waiters, func(x chan *Received) bool { return x == w })
	select {
	case m := <-w:
		// Handed over while leaving: back to the front.
		r.buf = slices.Insert(r.buf, 0, m)
	default:
	}
	r.mu.Unlock()
	r.wake()
	return nil, false
}

// run is the receive loop: it starts receives when subscriptions wait (and
// ahead of them while they consume fast), hands out their messages in the
// order the receives started, and gives back what nobody took in time.
func (r *receiver) run() {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for r.ctx.Err() == nil {
		r.takeResults()
		stale, need, ticket, ctx := r.plan()
		if len(stale) > 0 {
			r.giveBack(stale)
		}
		if need > 0 {
			r.startReceive(ctx, need, ticket)
			continue
		}
		timer.Reset(r.waitTime())
		select {
		case <-r.ctx.Done():
		case <-r.wakeC:
		case <-timer.C:
		}
	}
	r.receives.Wait()
	r.takeResults()
	r.mu.Lock()
	buf := r.buf
	r.buf = nil
	r.mu.Unlock()
	r.giveBack(buf)
}

func (r *receiver) startReceive(ctx context.Context, need int, ticket uint64) {
	var once sync.Once
	holding := func() {
		once.Do(func() {
			r.mu.Lock()
			r.unheld--
			r.mu.Unlock()
			r.wake()
		})
	}
	ctx = context.WithValue(ctx, holdingKey{}, holding)
	r.receives.Add(1)
	go func() {
		defer r.receives.Done()
		got, err := r.e.d.ReceiveBatch(ctx, r.queue, need)
		holding()
		now := time.Now()
		for _, m := range got {
			m.receivedAt = now
		}
		r.mu.Lock()
		call := r.calls[ticket]
		call.cancel()
		delete(r.calls, ticket)
		r.results[ticket] = receiveResult{need: need, ahead: call.ahead, got: got, err: err}
		r.mu.Unlock()
		r.wake()
	}()
}

// takeResults hands out the messages of finished receives in the order
// the receives started, so a later one finishing first cannot overtake an
// earlier one.
func (r *receiver) takeResults() {
	for {
		r.mu.Lock()
		res, ok := r.results[r.nextResult]
		if ok {
			delete(r.results, r.nextResult)
			r.nextResult++
		}
		r.mu.Unlock()
		if !ok {
			return
		}
		r.takeResult(res)
		// Counted out only now that its messages are handed out or
		// buffered (paused waits for that).
		r.mu.Lock()
		r.inflight--
		if res.ahead {
			r.ahead--
		}
		r.incoming -= res.need
		r.mu.Unlock()
	}
}

func (r *receiver) takeResult(res receiveResult) {
	if res.err != nil && len(res.got) == 0 {
		if errors.Is(res.err, context.Canceled) {
			return // the engine cancelled it: stopping, pausing, or giving back
		}
		r.mu.Lock()
		delay := r.backoff.Next()
		r.retryAt = time.Now().Add(delay)
		r.mu.Unlock()
		r.e.log.Warn("quantumflow: receive failed; retrying", slog.String("queue", r.queue),
			slog.Any("error", r.e.wrap("receive from", r.queue, res.err)), slog.Duration("retry_in", delay))
		return
	}
	r.mu.Lock()
	r.backoff.Reset()
	r.cameBack(res)
	r.mu.Unlock()
	r.handOut(r.e.screen(r.queue, res.got), len(res.got) == res.need)
}

// cameBack counts given-back messages a receive brought back, and stops
// waiting for those that went to other processes: all of them when the
// receive brought fewer than it asked for (the queue had no more ready),
// and those before a message it took in queue order (see
// Received.OutOfOrder).
func (r *receiver) cameBack(res receiveResult) {
	if len(r.givenBack) == 0 {
		return
	}
	for _, m := range res.got {
		delete(r.givenBack, m.ID)
	}
	if len(res.got) < res.need {
		clear(r.givenBack)
		return
	}
	// A message taken in queue order comes after every message still to
	// take: the given-back ones before it (before the last such message)
	// went to other processes.
	var last *Received
	for _, m := range res.got {
		if !m.OutOfOrder && (last == nil || deliveryOrder(last, m) < 0) {
			last = m
		}
	}
	if last != nil {
		maps.DeleteFunc(r.givenBack, func(_ string, g givenBackMsg) bool { return deliveryOrder(g.m, last) < 0 })
	}
}

// setHalted halts the receiver (its queue was paused: receives in flight
// are cancelled, and what it holds goes back at the next plan) or lets it
// receive again.
func (r *receiver) setHalted(halted bool) {
	r.mu.Lock()
	changed := r.halted != halted
	r.halted = halted
	if changed && halted {
		for _, c := range r.calls {
			c.cancel()
		}
		r.target = 1
	}
	r.mu.Unlock()
	if changed {
		r.wake()
	}
}

// plan looks at the subscriptions, the buffer and the receives in flight:
// which buffered messages waited too long, and whether to start a receive
// (of need messages, with the ticket that orders its hand-out).
func (r *receiver) plan() (stale []*Received, need int, ticket uint64, ctx context.Context) {
	now := time.Now()
	t := r.e.tuning
	r.mu.Lock()
	defer r.mu.Unlock()
	// When a buffered message waited too long, give back the whole buffer:
	// giving back only the stale ones would let newer messages overtake
	// them. And only with no receive in flight, whose messages would
	// overtake them too: those are cancelled, to return what they have.
	r.buf = slices.DeleteFunc(r.buf, (*Received).Lost)
	r.forgetGivenBack(now)
	if r.halted {
		// Paused: back to the queue, once no receive in flight can bring
		// messages that would overtake them.
		if r.inflight == 0 {
			stale, r.buf = r.buf, nil
		}
		return stale, 0, 0, nil
	}
	if slices.ContainsFunc(r.buf, func(m *Received) bool { return now.Sub(m.receivedAt) >= t.PrefetchHold }) {
		if r.inflight > 0 {
			for _, c := range r.calls {
				c.cancel()
			}
			return nil, 0, 0, nil
		}
		stale, r.buf = r.buf, nil
		// Consumers slowed down or stopped: no receiving ahead until they
		// show again that they are fast. (Halving would receive ahead again
		// at once, and hold messages away from other processes again.)
		r.target = 1
	}
	if r.inflight >= t.ReceivesInFlight || t.ReceiveInOrder && r.unheld > 0 || now.Before(r.retryAt) {
		return stale, 0, 0, nil
	}
	need, ahead := r.need()
	if need == 0 {
		return stale, 0, 0, nil
	}
	r.inflight++
	if ahead {
		r.ahead++
	}
	r.unheld++
	r.incoming += need
	ticket = r.nextTicket
	r.nextTicket++
	call := &receiveCall{ahead: ahead}
	ctx, call.cancel = context.WithCancel(r.ctx)
	r.calls[ticket] = call
	return stale, need, ticket, ctx
}

// need is the size of the next receive, zero for none: for the
// subscriptions that wait and no receive in flight serves, and ahead of
// them while there is less than two batches' worth at hand. ahead says
// whether it asks for more than they take. r.mu is held.
//
// No receiving ahead while an admin read runs (it wants what this backend
// holds given back: see paused) or while given-back messages are still
// out (see givenBack). Receives for waiting subscriptions go on: what they
// bring is in flight for a read, as it is for the driver, and stopping
// them let a process that polled Stats hard starve its own consumers.
func (r *receiver) need() (need int, ahead bool) {
	t := r.e.tuning
	waiting, avail := len(r.waiters), len(r.buf)+r.incoming
	onDemand := waiting - r.incoming
	mayAhead := r.pauses == 0 && len(r.givenBack) == 0
	switch {
	case onDemand > 0 && !mayAhead:
		return min(onDemand, t.MaxBatch), false
	case onDemand > 0:
		need = min(max(r.target-avail, onDemand), t.MaxBatch)
		return need, need > onDemand
	case mayAhead && len(r.subs) > 0 && r.target > 1 && avail < 2*r.target:
		return min(r.target, t.MaxBatch), true
	}
	return 0, false
}

// waitTime is how long the run loop may sleep: until the oldest buffered
// message's hold ends, or a failed receive may be retried.
func (r *receiver) waitTime() time.Duration {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	wait := time.Hour
	for _, m := range r.buf {
		wait = min(wait, max(0, m.receivedAt.Add(r.e.tuning.PrefetchHold).Sub(now)))
	}
	if r.retryAt.After(now) {
		wait = min(wait, r.retryAt.Sub(now))
	}
	return wait
}

// handOut gives received messages to waiting subscriptions, buffering the
// rest.
//
// Subscriptions waiting when a full batch arrives had emptied the buffer
// before it came: if they did so quickly after the previous batch (fast
// consumers, not a pause), the receiver asks for twice as many from now on.
func (r *receiver) handOut(got []*Received, full bool) {
	if len(got) == 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if full && len(r.waiters) > 0 && r.emptiedAt.Sub(r.handedAt) < r.e.tuning.PrefetchHold/4 {
		r.target = min(r.e.tuning.MaxBatch, 2*r.target)
	}
	r.handedAt = now
	r.buf = append(r.buf, got...)
	// A later receive may have found messages that go before buffered ones.
	slices.SortStableFunc(r.buf, deliveryOrder)
	r.serveWaiters()
}

// serveWaiters hands buffered messages to waiting subscriptions, in
// order, while the first is not blocked. Also while an admin read waits
// for the receives in flight (see paused): a message a subscription holds
// is in flight for the read as for the driver. Buffering it instead had
// it given back, and a process polling Stats often enough starved its own
// subscriptions: what each receive brought went back. r.mu is held.
func (r *receiver) serveWaiters() {
	for len(r.waiters) > 0 {
		m := r.pop()
		if m == nil {
			return
		}
		w := r.waiters[0]
		r.waiters = r.waiters[1:]
		w <- m
	}
}

// pop takes the first buffered message, dropping lost ones on the way;
// nil when there is none, it is blocked, or the queue is paused. r.mu is
// held.
func (r *receiver) pop() *Received {
	for len(r.buf) > 0 && !r.halted {
		m := r.buf[0]
		if !m.Lost() && r.blocked(m) {
			return nil
		}
		r.buf[0] = nil
		r.buf = r.buf[1:]
		if !m.Lost() {
			return m
		}
	}
	return nil
}

// blocked reports whether m goes after a message given back that has not
// come back yet (see givenBack). r.mu is held.
func (r *receiver) blocked(m *Received) bool {
	for _, g := range r.givenBack {
		if deliveryOrder(g.m, m) < 0 {
			return true
		}
	}
	return false
}

// deliveryOrder is the order ReceiveBatch promises: priority first, then
// oldest.
func deliveryOrder(a, b *Received) int {
	switch {
	case a.Priority != b.Priority:
		return int(b.Priority) - int(a.Priority)
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// givenBackWait is how long a receiver waits for a message it gave back
// (see receiver.givenBack): long enough for a slow consumer's next few
// receives, short enough that a message another process took holds this
// one's consumers up only briefly.
const givenBackWait = 2 * time.Second

// forgetGivenBack stops waiting for given-back messages whose wait ran
// out (taken by other processes meanwhile), and hands out what waited
// behind them. r.mu is held.
func (r *receiver) forgetGivenBack(now time.Time) {
	n := len(r.givenBack)
	maps.DeleteFunc(r.givenBack, func(_ string, g givenBackMsg) bool { return now.After(g.until) })
	if len(r.givenBack) < n {
		r.serveWaiters()
	}
}

// giveBack returns messages that reached no consumer to the queue.
func (r *receiver) giveBack(ms []*Received) {
	ms = slices.DeleteFunc(ms, (*Received).Lost)
	if len(ms) == 0 {
		return
	}
	r.mu.Lock()
	if r.givenBack == nil {
		r.givenBack = make(map[string]givenBackMsg, len(ms))
	}
	until := time.Now().Add(givenBackWait)
	for _, m := range ms {
		r.givenBack[m.ID] = givenBackMsg{m: m, until: until}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.e.d.GiveBack(ctx, r.queue, ms); err != nil {
		// Not lost: their leases run out and they are delivered again,
		// attempt counted.
		r.e.log.Warn("quantumflow: give back failed; the messages return when their leases expire",
			slog.String("queue", r.queue), slog.Int("messages", len(ms)), slog.Any("error", r.e.wrap("give back to", r.queue, err)))
	}
}

// paused gives back the buffer and runs read while no receive runs.
func (r *receiver) paused(ctx context.Context, read func() error) error {
	r.mu.Lock()
	r.pauses++
	for _, c := range r.calls {
		if c.ahead {
			c.cancel()
		}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.pauses--
		r.mu.Unlock()
		r.wake()
	}()
	// Receives ahead in flight land first: their messages come after the
	// buffered ones, and go back with them. (One could wait behind an
	// earlier receive for waiting subscriptions, as results are taken in
	// order; no driver's tuning starts a receive ahead of one that waits
	// on an empty queue: ReceivesInFlight 1, or ReceiveInOrder.)
	for {
		r.mu.Lock()
		n := r.ahead
		r.mu.Unlock()
		if n == 0 {
			break
		}
		r.wake()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	r.mu.Lock()
	buf := r.buf
	r.buf = nil
	r.target = 1
	r.mu.Unlock()
	r.giveBack(buf)
	return read()
}

// held returns every message the receiver holds: buffered, or out with a
// subscription.
func (r *receiver) held() []*Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.buf)
	for _, s := range r.subs {
		if m := s.current.Load(); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// screen settles, instead of handing them out, the received messages
// that expired (dead letters with ReasonExpired) or are not due yet
// (deferred until they are: see SettleDefer), and returns the others.
func (e *engine) screen(queue string, got []*Received) []*Received {
	now := time.Now()
	out := got[:0]
	for _, m := range got {
		// Malformed values never get this far: Publish refuses them.
		if exp, ok, _ := timeOf(m.ID, m.Metadata, MetadataExpiresAt); ok && !now.Before(exp) {
			e.log.Info("quantumflow: message expired; moved to the dead letters", slog.String("queue", queue), slog.String("message_id", m.ID))
			e.settles.add(queue, Settlement{Msg: m, Action: SettleDeadLetter, Error: ReasonExpired, DeadLetter: &DeadLetterReason{Error: ReasonExpired}})
			continue
		}
		if at, ok, _ := timeOf(m.ID, m.Metadata, MetadataDeliverAt); ok && at.After(now) {
			e.settles.add(queue, Settlement{Msg: m, Action: SettleDefer, Delay: at.Sub(now)})
			continue
		}
		out = append(out, m)
	}
	return out
}
