package postgres

import (
	"context"

	"github.com/quantumflow/quantumflow/pubsub"
)

// ExpireDedup runs one deletion of expired dedup claims now.
func ExpireDedup(ctx context.Context, d *Driver) error { return d.expireDedup(ctx) }

// Heartbeat beats as a lease holder once, as the reaper does.
func Heartbeat(ctx context.Context, d *Driver) error { return d.heartbeat(ctx) }

// Claim makes one claim of up to n messages of queue, without waiting and
// without starting the reaper (and its heartbeats) as ReceiveBatch does.
func Claim(ctx context.Context, d *Driver, queue string, n int) ([]*pubsub.Received, error) {
	return d.claim(ctx, d.queueState(queue), queue, n)
}
