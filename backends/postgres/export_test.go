package postgres

import (
	"context"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// ExpireDedup runs one deletion of expired dedup claims now.
func ExpireDedup(ctx context.Context, d *Driver) error { return d.expireDedup(ctx) }

// Heartbeat beats as a lease holder once, as the reaper does.
func Heartbeat(ctx context.Context, d *Driver) error { return d.heartbeat(ctx) }

// Claim makes one claim of up to n messages of queue, without waiting and
// without starting the reaper (and its heartbeats) as ReceiveBatch does.
func Claim(ctx context.Context, d *Driver, queue string, n int) ([]*pubsub.Received, error) {
	return d.claim(ctx, d.queueState(queue), queue, n, alwaysClaim)
}

// Floored reports whether the queue's next claim would start from its
// claim floor.
func Floored(d *Driver, queue string) bool {
	_, ok := d.queueState(queue).floor(time.Now())
	return ok
}

// KeepFloor puts the queue's next periodic full claim an hour away.
func KeepFloor(d *Driver, queue string) {
	qs := d.queueState(queue)
	qs.mu.Lock()
	defer qs.mu.Unlock()
	qs.claimFloor.fullAt = time.Now().Add(time.Hour)
}

// Claims returns how many claims of queue the driver made.
func Claims(d *Driver, queue string) uint64 { return d.queueState(queue).claims.Load() }

// LostClaim records a claim that failed not knowing whether it committed.
func LostClaim(d *Driver) { d.lostClaim() }
