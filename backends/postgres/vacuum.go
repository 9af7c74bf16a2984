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
// A vacuum removes nothing while a transaction older than the dead rows
// is open (a long report, a forgotten session): when one leaves more than
// half of what was dead, the next waits twice as long, up to
// vacuumMaxWait, so that a held-back table is not scanned every few
// seconds for nothing. One that removes most brings the wait back to
// vacuumCheck. VACUUM (SKIP_LOCKED) returns at once, removing nothing,
// when another backend or autovacuum is vacuuming the table: so of the
// backends on one database one keeps vacuuming and the others look less
// often, ready to take over within vacuumMaxWait.
const (
	vacuumCheck   = 2 * time.Second
	vacuumMaxWait = 16 * time.Second
)

// vacuumLoop vacuums the messages table while the backend is open.
func (d *Driver) vacuumLoop() {
	wait := vacuumCheck
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(wait):
		}
		tried, leftMost, err := d.vacuumOnce(d.ctx)
		switch {
		case err != nil:
			if d.ctx.Err() == nil {
				d.log.Debug("quantumflow: postgres: vacuuming the messages table failed", "error", d.wrapErr(err))
			}
			wait = vacuumMaxWait
		case tried && leftMost:
			wait = min(2*wait, vacuumMaxWait)
		default:
			wait = vacuumCheck
		}
	}
}

// vacuumOnce vacuums the messages table when it holds vacuum_threshold
// dead tuples or more. It reports whether it tried, and whether more than
// half of them were still there after (held back, or vacuumed elsewhere).
func (d *Driver) vacuumOnce(ctx context.Context) (tried, leftMost bool, err error) {
	before, err := d.deadTuples(ctx)
	if err != nil || before < int64(d.cfg.vacuumThreshold) {
		return false, false, err
	}
	// A vacuum of a large table takes long: no timeout but the backend's.
	if _, err := d.pool.Exec(ctx, d.q.vacuum); err != nil {
		return false, false, err
	}
	after, err := d.deadTuples(ctx)
	if err != nil {
		return true, false, err
	}
	return true, after > before/2, nil
}

// deadTuples returns the statistics' count of dead tuples in the messages
// table.
func (d *Driver) deadTuples(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n int64
	err := d.pool.QueryRow(ctx, d.q.deadTuples).Scan(&n)
	return n, err
}
