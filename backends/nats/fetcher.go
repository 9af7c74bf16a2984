package nats

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// prefetchHold is how long a message pulled ahead may wait in a backend
// for a subscription before it goes back to the queue. Pulling ahead
// keeps fast consumers busy without a round trip per message; giving back
// what waits too long keeps a backend whose consumers slowed down from
// hoarding messages other processes could handle.
const prefetchHold = 200 * time.Millisecond

// rateWindow is the window over which the fetcher measures how fast its
// subscriptions take messages: it pulls ahead about what they took in the
// last window, so a message pulled ahead typically waits about that long.
const rateWindow = 50 * time.Millisecond

// fetcher pulls one queue's messages for all of a driver's subscriptions
// of it, through one puller: one request for what the waiting
// subscriptions need, batched across them, and, while they take messages
// fast from a backlog, up to prefetch messages ahead of them (a no-wait
// request: what the queue holds now). Messages pulled ahead that nobody
// takes within prefetchHold go back to the queue, all of them, recorded as
// deliveries that were no attempt (so Delivery.Attempt stays right); so do
// they when an admin read of the queue comes through this driver, and when
// the last subscription ends.
//
// Subscriptions take what was pulled ahead straight from buf, under mu,
// without a round through the fetcher's goroutine: at high rates that
// hand-off, two goroutine switches per message, cost more than the rest
// of the delivery. A subscription that finds buf empty queues a slot in
// waiters, and the fetcher puts the next message that arrives into the
// first slot. So buf is empty whenever waiters is not.
type fetcher struct {
	d     *driver
	queue string
	wake  chan struct{} // a subscription started waiting, or buf runs low

	mu      sync.Mutex
	buf     []buffered       // pulled ahead, oldest first
	waiters []chan *nats.Msg // slots of subscriptions waiting, first come first
	taken   int              // hand-outs since the fetcher last counted them
	lowMark int              // a take leaving fewer in buf wakes the fetcher

	withdrawC chan chan struct{}
	stop      chan struct{}
	done      chan struct{}
	subs      int // guarded by d.fetchersMu
}

// buffered is a message pulled ahead and not handed out yet.
type buffered struct {
	m  *nats.Msg
	at time.Time
}

// fetcherFor returns the queue's fetcher, starting it on first use; the
// caller must call releaseFetcher when its subscription ends.
func (d *driver) fetcherFor(q *queueEntry) *fetcher {
	d.fetchersMu.Lock()
	defer d.fetchersMu.Unlock()
	f := d.fetchers[q.name]
	if f == nil {
		f = &fetcher{
			d: d, queue: q.name,
			wake:      make(chan struct{}, 1),
			withdrawC: make(chan chan struct{}),
			stop:      make(chan struct{}),
			done:      make(chan struct{}),
		}
		d.fetchers[q.name] = f
		go f.run(q)
	}
	f.subs++
	return f
}

// releaseFetcher ends a subscription's use of f; the last one stops it and
// waits until it has given back what it held.
func (d *driver) releaseFetcher(f *fetcher) {
	d.fetchersMu.Lock()
	f.subs--
	last := f.subs == 0
	if last {
		delete(d.fetchers, f.queue)
	}
	d.fetchersMu.Unlock()
	if last {
		close(f.stop)
		<-f.done
	}
}

// withdraw gives back to the queue what this driver pulled ahead of its
// subscriptions, and stops pulling ahead until they show again that they
// consume fast. Admin reads call it first, so that what they report is
// what consumers then receive.
func (d *driver) withdraw(ctx context.Context, queue string) {
	d.fetchersMu.Lock()
	f := d.fetchers[queue]
	d.fetchersMu.Unlock()
	if f == nil {
		return
	}
	done := make(chan struct{})
	select {
	case f.withdrawC <- done:
	case <-f.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-f.done:
	case <-ctx.Done():
	}
}

// take waits for the next message of the queue. slot is the calling
// subscription's own (capacity 1, empty between calls). A message handed
// over as ctx ends is still returned: the caller puts it back.
func (f *fetcher) take(ctx context.Context, slot chan *nats.Msg) (*nats.Msg, error) {
	f.mu.Lock()
	if len(f.buf) > 0 {
		m := f.buf[0].m
		clear(f.buf[:1])
		f.buf = f.buf[1:]
		f.taken++
		low := len(f.buf) < f.lowMark
		f.mu.Unlock()
		if low {
			f.poke()
		}
		return m, nil
	}
	f.waiters = append(f.waiters, slot)
	f.mu.Unlock()
	f.poke()
	select {
	case m := <-slot:
		return m, nil
	case <-ctx.Done():
		f.mu.Lock()
		if i := slices.Index(f.waiters, slot); i >= 0 {
			f.waiters = slices.Delete(f.waiters, i, i+1)
			f.mu.Unlock()
			return nil, ctx.Err()
		}
		f.mu.Unlock()
		// The fetcher filled the slot first.
		return <-slot, nil
	}
}

// poke wakes the fetcher's goroutine, unless a wake is pending already.
func (f *fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// arrived hands messages just pulled to waiting subscriptions, first come
// first served, and keeps the rest in buf.
func (f *fetcher) arrived(ms []*nats.Msg, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range ms {
		if len(f.waiters) > 0 {
			f.waiters[0] <- m // capacity 1, empty: never blocks
			f.waiters[0] = nil
			f.waiters = f.waiters[1:]
			f.taken++
			continue
		}
		f.buf = append(f.buf, buffered{m: m, at: at})
	}
}

func (f *fetcher) run(q *queueEntry) {
	defer close(f.done)
	d := f.d
	maxAhead := d.cfg.prefetch
	if maxAhead <= 1 {
		maxAhead = 0
	}
	var (
		p *puller
		// Hand-outs in the current rate window, and in the last one.
		windowStart       = time.Now()
		windowN, lastRate int
		ahead             bool // the queue had a backlog at the last no-wait request
		withdrawals       []chan struct{}
		backoff           = 50 * time.Millisecond
		retryAt           time.Time
		reload            bool
	)
	hold := time.NewTimer(time.Hour)
	defer hold.Stop()
	holdSet := false

	giveBack := func() {
		f.mu.Lock()
		buf := f.buf
		f.buf = nil
		f.mu.Unlock()
		ms := make([]*nats.Msg, len(buf))
		for i, b := range buf {
			ms[i] = b.m
		}
		putBackMsgs(d, q.name, ms)
		holdSet = false
	}
	defer func() {
		giveBack()
		if p != nil {
			// Whatever the server had already sent goes back: those
			// deliveries never reached a handler.
			putBackMsgs(d, q.name, p.close())
		}
	}()
	fail := func(err error) {
		d.log.Warn("subscription: pulling failed, retrying", "queue", q.name, "error", err, "retry_in", backoff)
		retryAt = time.Now().Add(backoff)
		backoff = min(2*backoff, 2*time.Second)
		// A deleted consumer is recreated after the pause, as the
		// other calls on the queue would: not at once, racing them.
		reload = reload || errors.Is(err, errNoConsumer)
	}
	var batch []*nats.Msg // messages received in one wake
	for {
		now := time.Now()
		f.mu.Lock()
		windowN += f.taken
		f.taken = 0
		waiting, nbuf := len(f.waiters), len(f.buf)
		var oldest time.Time
		if nbuf > 0 {
			oldest = f.buf[0].at
		}
		f.mu.Unlock()
		if el := now.Sub(windowStart); el >= rateWindow {
			// Per rateWindow: this goroutine sleeps while subscriptions
			// take from buf, so a window may have lasted longer (and
			// idle subscriptions make it 0).
			lastRate = int(int64(windowN) * int64(rateWindow) / int64(el))
			windowN, windowStart = 0, now
		}
		if len(withdrawals) > 0 && (p == nil || p.outstanding <= 0 || !p.noWait) {
			// Messages of a no-wait request in flight would land after
			// the give-back: it waits for them.
			giveBack()
			nbuf = 0
			ahead = false
			lastRate, windowN, windowStart = 0, 0, now
			for _, w := range withdrawals {
				close(w)
			}
			withdrawals = nil
		}
		if reload && !now.Before(retryAt) {
			// Deleted (by an operator, or with its stream): recreate it.
			// If JetStream is only unavailable for a moment, this finds
			// it again once it is back.
			reload = false
			d.forget(q.name)
			ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
			if nq, err := d.queue(ctx, q.name); err == nil {
				q = nq
			}
			cancel()
			if p != nil {
				putBackMsgs(d, q.name, p.close())
				p = nil
			}
		}
		if p == nil && !now.Before(retryAt) {
			var err error
			if p, err = newPuller(d.nc, q.stream, consumerName, max(maxAhead, 1)+64); err != nil {
				p = nil
				fail(err)
			}
		}
		// Ahead: about what the subscriptions took in the last rate
		// window, while the queue has a backlog and they emptied what was
		// pulled ahead down to half.
		target := min(maxAhead, lastRate)
		lowMark := 0
		if target > 1 && ahead {
			lowMark = target / 2
		}
		f.mu.Lock()
		f.lowMark = lowMark
		f.mu.Unlock()
		if p != nil && p.outstanding <= 0 && !now.Before(retryAt) && len(withdrawals) == 0 {
			need := waiting - nbuf
			var err error
			switch {
			case lowMark > 0 && nbuf-waiting < lowMark:
				err = p.request(target+max(need, 0), true)
			case need > 0:
				err = p.request(need, false)
			}
			if err != nil {
				fail(err)
				continue
			}
		}

		if nbuf > 0 && !holdSet {
			hold.Reset(max(0, prefetchHold-time.Since(oldest)))
			holdSet = true
		}
		var pc <-chan *nats.Msg
		var check <-chan time.Time
		var reconnected <-chan nats.Status
		if p != nil {
			pc, check, reconnected = p.ch, p.check.C, p.reconnected
		}
		var retry <-chan time.Time
		if p == nil || (p.outstanding <= 0 && now.Before(retryAt)) {
			retry = time.After(max(time.Until(retryAt), time.Millisecond))
		}
		select {
		case m := <-pc:
			// Take in one turn whatever else the connection has queued.
			batch = batch[:0]
			var err error
			for {
				noWait := p.noWait && p.outstanding > 0
				asked := p.outstanding
				var data bool
				if data, err = p.receive(m); err != nil {
					break
				}
				if data {
					backoff = 50 * time.Millisecond
					batch = append(batch, m)
				} else if noWait && p.outstanding <= 0 && asked > 0 {
					// A no-wait request ended before it was full: the
					// backlog is used up; pull ahead again once a request
					// fills.
					ahead = false
				}
				if data && asked == 1 {
					// A full request: there is a backlog.
					ahead = true
				}
				if len(pc) == 0 {
					break
				}
				m = <-pc
			}
			if len(batch) > 0 {
				f.arrived(batch, time.Now())
				clear(batch)
			}
			if err != nil {
				fail(err)
				continue
			}
		case <-f.wake:
		case <-hold.C:
			// Armed for what was the oldest buffered message then: check
			// the oldest now (re-armed for it on the next turn).
			holdSet = false
			f.mu.Lock()
			expired := len(f.buf) > 0 && time.Since(f.buf[0].at) >= prefetchHold
			f.mu.Unlock()
			if expired {
				// Nobody took them in time: the subscriptions slowed
				// down. Back to the queue, all of them so that nothing
				// overtakes them, and no pulling ahead until the
				// subscriptions show again that they are fast.
				giveBack()
				ahead = false
				lastRate, windowN, windowStart = 0, 0, time.Now()
			}
		case w := <-f.withdrawC:
			withdrawals = append(withdrawals, w)
		case <-check:
			p.tick()
		case <-reconnected:
			p.lost()
		case <-retry:
		case <-f.stop:
			for _, w := range withdrawals {
				close(w)
			}
			return
		}
	}
}

// putBackMsg returns a message pulled and never handed out to the queue,
// recording that this delivery was no attempt.
func putBackMsg(d *driver, queue string, m *nats.Msg) {
	putBackMsgs(d, queue, []*nats.Msg{m})
}

// putBackMsgs returns messages pulled and never handed out to the queue,
// recording that these deliveries were no attempts: their states are
// written all at once (asynchronously, then every ack awaited), and only
// then are the messages nacked, as the redelivery reads the state.
func putBackMsgs(d *driver, queue string, ms []*nats.Msg) {
	if len(ms) == 0 {
		return
	}
	type putBack struct {
		m   *nats.Msg
		seq uint64
		ds  deliveryState
		f   jetstream.PubAckFuture
	}
	pbs := make([]putBack, 0, len(ms))
	now := time.Now()
	for _, m := range ms {
		var meta nats.MsgMetadata
		if err := ackMetadata(m.Reply, &meta); err != nil {
			_ = m.Nak()
			continue
		}
		var ds deliveryState
		if meta.NumDelivered > 1 {
			var ok bool
			if ds, ok = d.putBacks.take(queue, meta.Sequence.Stream, meta.NumDelivered); !ok {
				ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
				ds, _, _ = stateStore{d}.get(ctx, queue, meta.Sequence.Stream)
				cancel()
			}
		}
		ds.Uncounted++
		ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, now, meta.NumDelivered, meta.Timestamp
		pbs = append(pbs, putBack{m: m, seq: meta.Sequence.Stream, ds: ds})
	}
	for i := range pbs {
		f, err := stateStore{d}.putAsync(queue, pbs[i].seq, pbs[i].ds)
		if err != nil {
			d.log.Warn("subscription: writing delivery state failed", "queue", queue, "error", err)
			continue
		}
		pbs[i].f = f
	}
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for _, pb := range pbs {
		stored := false
		if pb.f != nil {
			select {
			case <-pb.f.Ok():
				stored = true
			case err := <-pb.f.Err():
				d.log.Warn("subscription: writing delivery state failed", "queue", queue, "error", err)
			case <-timeout.C:
				d.log.Warn("subscription: writing delivery state timed out", "queue", queue)
			}
		}
		if stored {
			d.putBacks.add(queue, pb.seq, pb.ds)
		}
		_ = pb.m.Nak()
	}
}
