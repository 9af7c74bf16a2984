package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// JetStream API error codes of conditions that pass: a cluster placing a
// stream before its peers are up, electing a leader, a stream or consumer
// whose replicas are catching up.
const (
	codeNoSuitablePeers = 10005
	codeClusterNotAvail = 10008
	codeNotLeader       = 10009
	codeStreamOffline   = 10118
	codeConsumerOffline = 10119
	codeStreamNotFound  = 10059
)

// errGaveUp marks an operation that kept failing on transient conditions
// for its whole retry budget (publish_timeout).
var errGaveUp = errors.New("gave up retrying")

// ErrorCode classifies the errors of this driver for the engine.
func (d *driver) ErrorCode(err error) pubsub.ErrorCode {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return pubsub.CodeUnknown
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, jetstream.ErrConnectionClosed), errors.Is(err, pubsub.ErrClosed):
		return pubsub.CodeClosed
	case errors.Is(err, errGaveUp):
		return pubsub.CodeUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return pubsub.CodeCanceled
	case errors.Is(err, pubsub.ErrQueueNotFound), errors.Is(err, jetstream.ErrStreamNotFound),
		errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamNotFound:
		return pubsub.CodeNotFound
	case transient(err):
		return pubsub.CodeUnavailable
	}
	return pubsub.CodeUnknown
}

// transient reports whether err is a condition that passes (a server
// restarting or unreachable, a leader election, a cluster placing a
// stream, an answer that did not come): retrying the same call, with the
// same message ids, may succeed.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// Limits reached (503 as well, error code 10077), a wrong stream
		// and other refusals do not go away by retrying.
		switch apiErr.ErrorCode {
		case codeNoSuitablePeers, codeClusterNotAvail, codeNotLeader, codeStreamOffline, codeConsumerOffline:
			return true
		}
		return apiErr.Code == 408
	}
	return errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs) ||
		errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged) ||
		errors.Is(err, jetstream.ErrNoHeartbeat)
}

// retry runs op until it succeeds, fails for good, or has kept failing on
// transient conditions for publish_timeout (then the error wraps
// errGaveUp). ctx ending stops it with ctx's error. Each try gets ctx
// bounded by the remaining budget and, when try is positive, by try: a
// request sent while the connection is down may never be answered.
func (d *driver) retry(ctx context.Context, what string, try time.Duration, op func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	budget, cancel := context.WithTimeout(ctx, d.cfg.publishTimeout)
	defer cancel()
	backoff := pubsub.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	for {
		tctx, tcancel := budget, context.CancelFunc(func() {})
		if try > 0 {
			tctx, tcancel = context.WithTimeout(budget, try)
		}
		err := op(tctx)
		tcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		if !transient(err) {
			return err
		}
		if budget.Err() != nil {
			return d.gaveUp(err)
		}
		d.log.Debug("transient failure, retrying", "operation", what, "error", err)
		if backoff.Wait(budget) != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return d.gaveUp(err)
		}
	}
}

// retryRead runs a read of the admin operations again while it fails
// transiently, within publish_timeout, as retry does; but op runs with ctx
// itself, not with the budget, so that a long read (thousands of dead
// letters) is not cut short by it. Its requests are bounded all the same:
// by ctx's deadline, or jetstream's default timeout when it has none.
func (d *driver) retryRead(ctx context.Context, what string, op func(context.Context) error) error {
	return d.retry(ctx, what, 0, func(context.Context) error { return op(ctx) })
}

// gaveUp is the error of a retry budget spent. The last error is only
// quoted: it is often the budget's own deadline, which must not read as
// the caller's context ending.
func (d *driver) gaveUp(last error) error {
	return fmt.Errorf("%w for %s (last error: %v)", errGaveUp, d.cfg.publishTimeout, last)
}
