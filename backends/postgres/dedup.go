package postgres

import (
	"context"
	"time"
)

// dedupExpiryInterval is how often a backend that published with dedup
// keys, or consumes, deletes expired claims (quantum_flow_dedup).
const dedupExpiryInterval = time.Minute

// startDedupExpiry starts deleting expired dedup claims, once per
// backend: from its first publish with a dedup key, or when it starts
// consuming. Every backend doing it is harmless (SKIP LOCKED), and one is
// enough to keep the table at about one window's keys.
func (d *Driver) startDedupExpiry() {
	d.dedupStart.Do(func() {
		d.goBackground(func() { d.every(dedupExpiryInterval, "deleting expired dedup keys", d.expireDedup) })
	})
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
