package postgres

import (
	"context"
	"time"
)

// Vacuuming the messages table (issue 16). Every consumed message leaves
// dead row versions behind, its claim's and its delete's: 100k-odd a
// second at 60k msg/s. Autovacuum comes to a database once per
// autovacuum_naptime (a minute by default), whatever the table's own
// settings, so between its visits the table grows by a minute of messages
// and each visit then scans all of it: in bench/'s vacuum scenario 4M dead
// tuples, a 4 GB heap for a 200k backlog, and visits of 30-50 s. So a
// consuming backend vacuums the table itself once it holds vacuum_threshold
// dead tuples, looking every vacuumCheck. Vacuumed this way, the same run
// peaked at 420k dead tuples and consumed as fast.
//
// A vacuum removes nothing that died after the oldest transaction still
// open in the database began (a long report, a forgotten session). When
// one removes less than half of what was dead, the backend notes that
// oldest transaction (pg_stat_activity's backend_xmin and backend_xid,
// which every role may read) and vacuums again only once it has ended:
// at once then, not up to a minute later. When vacuums still remove little
// although it ended, something pg_stat_activity does not show holds them
// back (a replication slot, a prepared transaction), or another backend is
// vacuuming the table (VACUUM (SKIP_LOCKED) then returns at once): each
// such vacuum doubles the wait before the next, up to vacuumMaxWait, so
// that a held-back table is not scanned every few seconds for nothing, and
// of the backends on one database one vacuums while the others look less
// often. A vacuum that removes most ends the wait.
const (
	vacuumCheck   = 2 * time.Second
	vacuumMaxWait = 16 * time.Second
)

// vacuumer is a backend's vacuuming state between checks.
type vacuumer struct {
	// heldAt is the database's oldest transaction (its xid) when the last
	// vacuum removed little; 0 when it removed most.
	heldAt int64
	// backoff is the wait after a vacuum that removed little although the
	// oldest transaction had changed; no vacuum starts before notBefore.
	backoff   time.Duration
	notBefore time.Time
}

// vacuumLoop vacuums the messages table while the backend is open.
func (d *Driver) vacuumLoop() {
	var v vacuumer
	d.every(vacuumCheck, "vacuuming the messages table", func(ctx context.Context) error { return v.step(ctx, d) })
}

// step vacuums the messages table when it holds vacuum_threshold dead
// tuples or more and a vacuum may remove them.
func (v *vacuumer) step(ctx context.Context, d *Driver) error {
	dead, oldest, err := d.vacuumStats(ctx)
	switch {
	case err != nil:
		return err
	case dead < int64(d.cfg.vacuumThreshold):
		*v = vacuumer{}
		return nil
	case v.heldAt != 0 && oldest == v.heldAt, time.Now().Before(v.notBefore):
		return nil
	}
	// A vacuum of a large table takes long: no timeout but the backend's.
	if _, err := d.pool.Exec(ctx, d.q.vacuum); err != nil {
		return err
	}
	after, _, err := d.vacuumStats(ctx)
	switch {
	case err != nil:
		return err
	case after <= dead/2:
		*v = vacuumer{}
	default:
		if v.heldAt != 0 {
			v.backoff = min(max(2*v.backoff, 2*vacuumCheck), vacuumMaxWait)
			v.notBefore = time.Now().Add(v.backoff)
		}
		v.heldAt = oldest
	}
	return nil
}

// vacuumStats returns the statistics' count of dead tuples in the
// messages table and the database's oldest transaction.
func (d *Driver) vacuumStats(ctx context.Context) (dead, oldest int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = d.pool.QueryRow(ctx, d.q.vacuumStats).Scan(&dead, &oldest)
	return dead, oldest, err
}
