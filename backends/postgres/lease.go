package postgres

import (
	"context"
	"sync"
	"time"
)

// leases keeps the leases of the messages this backend holds (buffered or
// with a consumer) alive, and returns the messages of dead consumers
// anywhere to their queues.
type leases struct {
	d    *Driver
	mu   sync.Mutex
	held map[int64]*claimed
}

func newLeases(d *Driver) *leases {
	return &leases{d: d, held: map[int64]*claimed{}}
}

func (l *leases) add(cs []*claimed) {
	if len(cs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		l.held[c.seq] = c
	}
}

func (l *leases) remove(c *claimed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[c.seq] == c {
		delete(l.held, c.seq)
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
	l.mu.Lock()
	var seqs []int64
	var owners []string
	byseq := map[int64]*claimed{}
	for seq, c := range l.held {
		if c.leaseUntil.Sub(now) < 2*d.cfg.lease/3 {
			seqs = append(seqs, seq)
			owners = append(owners, c.owner)
			byseq[seq] = c
		}
	}
	l.mu.Unlock()
	if len(seqs) == 0 {
		return
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
	defer l.mu.Unlock()
	for seq, c := range byseq {
		if renewed[seq] {
			c.leaseUntil = now.Add(d.cfg.lease)
			continue
		}
		// Settled meanwhile, or lost.
		if l.held[seq] == c {
			c.lost.Store(true)
			delete(l.held, seq)
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
