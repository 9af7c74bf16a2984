package postgres

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// leases keeps the leases of the messages this backend holds (buffered or
// with a consumer) alive, and returns the messages of dead consumers
// anywhere to their queues. It tracks claims, not messages, so that the
// hot path pays one atomic operation per message.
type leases struct {
	d       *Driver
	mu      sync.Mutex
	batches []*leaseBatch
}

// leaseBatch is the messages of one claim.
type leaseBatch struct {
	msgs  []*claimed
	open  atomic.Int32 // messages not yet settled or released
	until time.Time    // local estimate of the lease's end, guarded by leases.mu
}

func newLeases(d *Driver) *leases {
	return &leases{d: d}
}

// add starts tracking a claim's messages.
func (l *leases) add(cs []*claimed, until time.Time) {
	if len(cs) == 0 {
		return
	}
	b := &leaseBatch{msgs: cs, until: until}
	b.open.Store(int32(len(cs)))
	for _, c := range cs {
		c.batch = b
	}
	l.mu.Lock()
	l.batches = append(l.batches, b)
	l.mu.Unlock()
}

// remove stops tracking a message: it was settled or released.
func (l *leases) remove(c *claimed) {
	if c.batch != nil && c.done.CompareAndSwap(false, true) {
		c.batch.open.Add(-1)
	}
}

// run renews leases every third of the lease time and reaps expired ones
// every half.
func (l *leases) run() {
	lease := l.d.cfg.lease
	renew := time.NewTicker(lease / 3)
	defer renew.Stop()
	reap := time.NewTicker(lease / 2)
	defer reap.Stop()
	for {
		select {
		case <-l.d.ctx.Done():
			return
		case <-renew.C:
			l.renew()
		case <-reap.C:
			l.reap()
		}
	}
}

// renew extends the leases that would expire within two thirds of the
// lease time. A lease found taken over (this backend was away longer than
// the lease) is dropped: a buffered message is then not handed out.
func (l *leases) renew() {
	d := l.d
	now := time.Now()
	var due []*leaseBatch
	var seqs []int64
	var owners []string
	byseq := map[int64]*claimed{}
	l.mu.Lock()
	keep := l.batches[:0]
	for _, b := range l.batches {
		if b.open.Load() == 0 {
			continue
		}
		keep = append(keep, b)
		if b.until.Sub(now) >= 2*d.cfg.lease/3 {
			continue
		}
		due = append(due, b)
		for _, c := range b.msgs {
			if !c.done.Load() {
				seqs = append(seqs, c.seq)
				owners = append(owners, c.owner)
				byseq[c.seq] = c
			}
		}
	}
	clear(l.batches[len(keep):])
	l.batches = keep
	l.mu.Unlock()
	if len(seqs) == 0 {
		return
	}
	// In seq order, as settles lock rows: no deadlock between them.
	slices.Sort(seqs)
	for i, seq := range seqs {
		owners[i] = byseq[seq].owner
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.lease/3)
	defer cancel()
	rows, err := d.pool.Query(ctx, d.q.extend, seqs, owners, d.cfg.lease.Milliseconds())
	if err != nil {
		d.log.Warn("quantumflow: postgres: renewing leases failed", "error", d.wrapErr("", err))
		return
	}
	renewed := map[int64]bool{}
	for rows.Next() {
		var seq int64
		if rows.Scan(&seq) == nil {
			renewed[seq] = true
		}
	}
	rows.Close()
	if rows.Err() != nil {
		d.log.Warn("quantumflow: postgres: renewing leases failed", "error", d.wrapErr("", rows.Err()))
		return
	}
	l.mu.Lock()
	for _, b := range due {
		b.until = now.Add(d.cfg.lease)
	}
	l.mu.Unlock()
	for seq, c := range byseq {
		// Not renewed: settled meanwhile (fine), or lost.
		if !renewed[seq] && c.done.CompareAndSwap(false, true) {
			c.batch.open.Add(-1)
			c.lost.Store(true)
			d.log.Warn("quantumflow: postgres: lease lost; another consumer may handle the message", "queue", c.queue, "id", c.id)
		}
	}
}

// reap returns messages whose lease expired to their queues.
func (l *leases) reap() {
	d := l.d
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.lease/2)
	defer cancel()
	rows, err := d.pool.Query(ctx, d.q.reap)
	if err != nil {
		d.log.Debug("quantumflow: postgres: reaping expired leases failed", "error", d.wrapErr("", err))
		return
	}
	var queues []string
	for rows.Next() {
		var q string
		if rows.Scan(&q) == nil {
			queues = append(queues, q)
		}
	}
	rows.Close()
	if len(queues) == 0 {
		return
	}
	d.log.Info("quantumflow: postgres: returned messages of expired leases", "queues", queues)
	for _, q := range queues {
		d.sub.wake(q)
	}
	d.notifier.after(queues)
}
