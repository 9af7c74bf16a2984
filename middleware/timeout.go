package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrTimeout is wrapped by the error of an attempt that failed after its
// deadline passed.
var ErrTimeout = errors.New("handler timed out")

// Timeout gives each attempt a context that is cancelled after d (d <= 0:
// no deadline). Handlers must watch msg.Context() to honour it; a handler
// that ignores its context cannot be stopped, and keeps its worker.
//
// Unlike Watermill's Timeout, it restores the message's original context
// when the attempt returns, so middleware outside it (and a later attempt)
// never starts from a cancelled context.
//
// An attempt that returns an error after its deadline passed has that error
// wrapped with ErrTimeout (and the duration); an attempt that succeeds late
// is a success.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		if d <= 0 {
			return h
		}
		return func(msg *message.Message) ([]*message.Message, error) {
			orig := msg.Context()
			ctx, cancel := context.WithTimeout(orig, d)
			defer cancel()
			msg.SetContext(ctx)
			defer msg.SetContext(orig)

			out, err := h(msg)
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && orig.Err() == nil {
				err = fmt.Errorf("%w after %s: %w", ErrTimeout, d, err)
			}
			return out, err
		}
	}
}
