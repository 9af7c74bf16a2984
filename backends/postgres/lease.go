package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// LeaseInterval is how often the engine extends the leases of the
// messages it holds: a third of the lease.
func (d *Driver) LeaseInterval() time.Duration { return d.cfg.lease / 3 }

// ExtendLeases extends the leases of ms that this backend still holds. A
// lease found taken over (this backend was away longer than the lease,
// and the message went back to its queue) is marked lost: a buffered
// message is then not handed out, and its settlement does nothing.
func (d *Driver) ExtendLeases(ctx context.Context, queue string, ms []*pubsub.Received) error {
	held := make([]*lease, 0, len(ms))
	for _, m := range ms {
		if l := m.AckID.(*lease); !m.Lost() && !l.settled.Load() {
			held = append(held, l)
		}
	}
	if len(held) == 0 {
		return nil
	}
	// In seq order, as settlements lock rows: no deadlock between them.
	slices.SortFunc(held, func(a, b *lease) int { return cmp.Compare(a.seq, b.seq) })
	seqs := make([]int64, len(held))
	owners := make([]string, len(held))
	for i, l := range held {
		seqs[i], owners[i] = l.seq, l.owner
	}
	rows, err := d.pool.Query(ctx, d.q.extend, seqs, owners, d.cfg.lease.Milliseconds())
	if err != nil {
		return d.wrapErr(err)
	}
	extended := make(map[int64]bool, len(seqs))
	for rows.Next() {
		var seq int64
		if rows.Scan(&seq) == nil {
			extended[seq] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d.wrapErr(err)
	}
	for _, m := range ms {
		// Not extended: settled meanwhile (fine), or lost.
		if l := m.AckID.(*lease); !extended[l.seq] && !l.settled.Load() && !m.Lost() {
			m.MarkLost()
			d.log.Warn("quantumflow: postgres: lease lost; another consumer may handle the message", "queue", queue, "id", m.ID)
		}
	}
	return nil
}

// sweepInterval is how often one backend of the database reads the whole
// table for expired leases, whatever the heartbeats say.
const sweepInterval = time.Hour

// reap keeps this backend's heartbeat as a lease holder and returns
// expired leases to their queues, every third of the lease, until the
// backend closes. The first pass waits for the first tick, as a lease
// does: the hourly read of the whole table, due at a database's first
// pass, would otherwise compete with a consumer's first messages.
func (d *Driver) reap() {
	t := time.NewTicker(d.cfg.lease / 3)
	defer t.Stop()
	for reap := false; ; reap = true {
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.lease/3)
		if err := d.heartbeat(ctx); err != nil && d.ctx.Err() == nil {
			d.log.Warn("quantumflow: postgres: lease holder heartbeat failed; claims wait for the next", "error", d.wrapErr(err))
		}
		if reap {
			if _, err := d.ReapExpired(ctx); err != nil && d.ctx.Err() == nil {
				d.log.Debug("quantumflow: postgres: reaping expired leases failed", "error", d.wrapErr(err))
			}
		}
		cancel()
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReapExpired returns the messages whose leases expired to their queues
// now, counted as failed attempts, and returns how many it returned. The
// backend does it by itself every third of the lease while it consumes.
//
// Its cost grows with the leases that expired, not with the table: it
// reads the index of parked leases (those held past their first
// extension), and reads the table only while some lease holder's
// heartbeat has run out (its unparked leases are nowhere else), a lease
// after a claim of this backend failed not knowing whether it committed,
// and once an hour for the whole database.
func (d *Driver) ReapExpired(ctx context.Context) (int, error) {
	n, err := d.reapWith(ctx, d.q.reapParked)
	if err != nil {
		return n, err
	}
	var dead bool
	var start time.Time
	if err := d.pool.QueryRow(ctx, d.q.deadHolders).Scan(&dead, &start); err != nil {
		return n, err
	}
	lost := d.lostClaimsAt.Load()
	lostDue := lost != 0 && time.Now().UnixNano() >= lost
	if !dead && !lostDue && !d.sweepDue(ctx) {
		return n, nil
	}
	m, err := d.reapWith(ctx, d.q.reapAll)
	if err == nil && lostDue {
		d.lostClaimsAt.CompareAndSwap(lost, 0) // a claim lost since stays due
	}
	if err == nil && dead {
		_, err = d.pool.Exec(ctx, d.q.dropHolders, start)
	}
	return n + m, err
}

// lostClaim records that a claim failed without knowing whether it
// committed: its leases, if it did, expire within a lease, and a full
// reap then returns them (a heartbeat that runs says nothing of them).
func (d *Driver) lostClaim() {
	at := time.Now().Add(d.cfg.lease).UnixNano()
	for {
		cur := d.lostClaimsAt.Load()
		if (cur != 0 && cur <= at) || d.lostClaimsAt.CompareAndSwap(cur, at) {
			return
		}
	}
}

// sweepDue reports whether this backend makes the hourly full reap.
func (d *Driver) sweepDue(ctx context.Context) bool {
	var due bool
	err := d.pool.QueryRow(ctx, d.q.sweep, sweepInterval.Milliseconds()).Scan(&due)
	return err == nil && due
}

// reapWith runs a reap statement until it returns fewer than its batch,
// wakes the queues it returned messages to, and counts them.
func (d *Driver) reapWith(ctx context.Context, query string) (int, error) {
	total := 0
	for {
		var queues []string
		var n int
		rows, err := d.pool.Query(ctx, query)
		if err != nil {
			return total, err
		}
		for rows.Next() {
			var q string
			var c int
			if rows.Scan(&q, &c) == nil {
				queues, n = append(queues, q), n+c
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		total += n
		if len(queues) > 0 {
			d.log.Info("quantumflow: postgres: returned messages of expired leases", "queues", queues, "messages", n)
			for _, q := range queues {
				d.returned(q)
			}
			d.notifier.after(queues)
		}
		if n < reapBatch {
			return total, nil
		}
	}
}

// heartbeat records that this backend is alive as a lease holder for
// another lease.
func (d *Driver) heartbeat(ctx context.Context) error {
	start := time.Now()
	if _, err := d.pool.Exec(ctx, d.q.heartbeat, d.instance, d.cfg.lease.Milliseconds()); err != nil {
		return err
	}
	d.beatMu.Lock()
	d.lastBeat = start
	d.beatMu.Unlock()
	return nil
}

// holding makes sure this backend's heartbeat runs before it claims:
// after two thirds of a lease without one it beats first. The claim
// checks the heartbeat in the database too, so this only saves claims
// that would take nothing.
func (d *Driver) holding(ctx context.Context) error {
	d.beatMu.Lock()
	fresh := !d.lastBeat.IsZero() && time.Since(d.lastBeat) < 2*d.cfg.lease/3
	d.beatMu.Unlock()
	if fresh {
		return nil
	}
	return d.heartbeat(ctx)
}

// stopHolding ends this backend's heartbeat on close (see
// queries.stopHolding).
func (d *Driver) stopHolding(ctx context.Context) error {
	_, err := d.pool.Exec(ctx, d.q.stopHolding, d.instance)
	return err
}
