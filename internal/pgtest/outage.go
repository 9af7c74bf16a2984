package pgtest

import (
	"context"
	"errors"
	"time"
)

// StopFor stops the server (fast shutdown), keeps it down for outage and
// starts it again on the same port and data: an outage clients see as
// refused connections for that long. It is Restart with a pause, for the
// reliability harness.
func (c *Cluster) StopFor(ctx context.Context, outage time.Duration) error {
	if c.external {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgtest: stop of a stopped cluster")
	}
	if err := c.shutdown(); err != nil {
		return err
	}
	t := time.NewTimer(outage)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	// Started again even when ctx is done, so that Stop finds it running.
	return c.startLocked(context.WithoutCancel(ctx))
}
