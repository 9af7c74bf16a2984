package postgres

import "context"

// ExpireDedup runs one deletion of expired dedup claims now.
func ExpireDedup(ctx context.Context, d *Driver) error { return d.expireDedup(ctx) }
