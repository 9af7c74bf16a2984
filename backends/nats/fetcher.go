package nats

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
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
type fetcher struct {
	d     *driver
	queue string
	ready chan *nats.Msg // hands a message to a waiting subscription
	wake  chan struct{}  // a subscription started waiting
	// waiting counts subscriptions blocked in take. take adds one; the
	// fetcher takes it off when it hands a message over, take when it
	// gives up (its context ended).
	waiting   atomic.Int32
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
			ready:     make(chan *nats.Msg),
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

// take waits for the next message of the queue.
func (f *fetcher) take(ctx context.Context) (*nats.Msg, error) {
	f.waiting.Add(1)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	select {
	case m := <-f.ready:
		return m, nil
	case <-ctx.Done():
		f.waiting.Add(-1)
		return nil, ctx.Err()
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
		p   *puller
		buf []buffered
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
		for _, b := range buf {
			putBackMsg(d, q.name, b.m)
		}
		clear(buf)
		buf = buf[:0]
		holdSet = false
	}
	defer func() {
		giveBack()
		if p != nil {
			// Whatever the server had already sent goes back: those
			// deliveries never reached a handler.
			for _, m := range p.close() {
				putBackMsg(d, q.name, m)
			}
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
	for {
		now := time.Now()
		if el := now.Sub(windowStart); el >= rateWindow {
			lastRate = windowN
			if el >= 2*rateWindow {
				// Nothing for a while: the subscriptions were idle.
				lastRate = 0
			}
			windowN, windowStart = 0, now
		}
		waiting := int(f.waiting.Load())
		if len(withdrawals) > 0 && (p == nil || p.outstanding <= 0 || !p.noWait) {
			// Messages of a no-wait request in flight would land after
			// the give-back: it waits for them.
			giveBack()
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
				for _, m := range p.close() {
					putBackMsg(d, q.name, m)
				}
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
		if p != nil && p.outstanding <= 0 && !now.Before(retryAt) && len(withdrawals) == 0 {
			need := waiting - len(buf)
			// Ahead: about what the subscriptions took in the last rate
			// window, while the queue has a backlog and they emptied what
			// was pulled ahead down to half.
			target := min(maxAhead, lastRate)
			var err error
			switch {
			case target > 1 && ahead && len(buf)-waiting < target/2:
				err = p.request(target+max(need, 0), true)
			case need > 0:
				err = p.request(need, false)
			}
			if err != nil {
				fail(err)
				continue
			}
		}

		var readyC chan *nats.Msg
		var head *nats.Msg
		if len(buf) > 0 && waiting > 0 {
			readyC, head = f.ready, buf[0].m
		}
		if len(buf) > 0 && !holdSet {
			hold.Reset(max(0, prefetchHold-time.Since(buf[0].at)))
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
		case readyC <- head:
			f.waiting.Add(-1)
			clear(buf[:1])
			buf = buf[1:]
			if len(buf) == 0 {
				buf = nil
			}
			windowN++
		case m := <-pc:
			noWait := p.noWait && p.outstanding > 0
			asked := p.outstanding
			data, err := p.receive(m)
			if err != nil {
				fail(err)
				continue
			}
			if data {
				backoff = 50 * time.Millisecond
				buf = append(buf, buffered{m: m, at: time.Now()})
			} else if noWait && p.outstanding <= 0 && asked > 0 {
				// A no-wait request ended before it was full: the backlog
				// is used up; pull ahead again once a request fills.
				ahead = false
			}
			if data && asked == 1 {
				// A full request: there is a backlog.
				ahead = true
			}
		case <-f.wake:
		case <-hold.C:
			// Armed for what was the oldest buffered message then: check
			// the oldest now (re-armed for it on the next turn).
			holdSet = false
			if len(buf) > 0 && time.Since(buf[0].at) >= prefetchHold {
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
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		return
	}
	var ds deliveryState
	if meta.NumDelivered > 1 {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		ds, _, _ = stateStore{d}.get(ctx, queue, meta.Sequence.Stream)
		cancel()
	}
	ds.Uncounted++
	ds.Waiting, ds.RetryAt, ds.Deliveries, ds.PublishedAt = true, time.Now(), meta.NumDelivered, meta.Timestamp
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := (stateStore{d}).put(ctx, queue, meta.Sequence.Stream, ds); err != nil {
		d.log.Warn("subscription: writing delivery state failed", "queue", queue, "error", err)
	}
	_ = m.Nak()
}
