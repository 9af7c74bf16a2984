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

// reap returns the messages of consumers that died (their leases expired)
// to their queues, every half lease, until the backend closes.
func (d *Driver) reap() {
	t := time.NewTicker(d.cfg.lease / 2)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.lease/2)
		queues, err := d.reapOnce(ctx)
		cancel()
		if err != nil {
			d.log.Debug("quantumflow: postgres: reaping expired leases failed", "error", d.wrapErr(err))
			continue
		}
		if len(queues) > 0 {
			d.log.Info("quantumflow: postgres: returned messages of expired leases", "queues", queues)
			for _, q := range queues {
				d.wake(q)
			}
			d.notifier.after(queues)
		}
	}
}

func (d *Driver) reapOnce(ctx context.Context) ([]string, error) {
	rows, err := d.pool.Query(ctx, d.q.reap)
	if err != nil {
		return nil, err
	}
	var queues []string
	for rows.Next() {
		var q string
		if rows.Scan(&q) == nil {
			queues = append(queues, q)
		}
	}
	rows.Close()
	return queues, rows.Err()
}

// dedupExpiryInterval is how often a backend that published with dedup
// keys, or consumes, deletes expired claims (quantum_flow_dedup).
const dedupExpiryInterval = time.Minute

// startDedupExpiry starts deleting expired dedup claims, once per
// backend: from its first publish with a dedup key, or when it starts
// consuming. Every backend doing it is harmless (SKIP LOCKED), and one is
// enough to keep the table at about one window's keys.
func (d *Driver) startDedupExpiry() {
	d.dedupStart.Do(func() { d.goBackground(d.expireDedupLoop) })
}

func (d *Driver) expireDedupLoop() {
	t := time.NewTicker(dedupExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if err := d.expireDedup(d.ctx); err != nil && d.ctx.Err() == nil {
			d.log.Debug("quantumflow: postgres: deleting expired dedup keys failed", "error", d.wrapErr(err))
		}
	}
}

// expireDedup deletes the dedup claims whose window ended, in batches.
func (d *Driver) expireDedup(ctx context.Context) error {
	for {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tag, err := d.pool.Exec(ctx, d.q.expireDedup)
		cancel()
		if err != nil {
			if code, ok := sqlState(err); ok && code == "42P01" {
				return nil // storage from before migration 0004: nothing to expire
			}
			return err
		}
		if tag.RowsAffected() < 5000 {
			return nil
		}
	}
}
