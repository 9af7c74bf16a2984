package middleware

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PanicError is the error a recovered panic becomes. Its text holds the
// panic value only; the stack goes to the log, so dead letters stay short.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
}

// Error returns "panic: " and the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Recoverer turns a panic in the handler into a *PanicError and logs the
// panic with its stack at error level. It must be the innermost middleware,
// so that Retry and PoisonQueue see panics as errors.
func Recoverer(c Consumer, logger *slog.Logger) message.HandlerMiddleware {
	logger = orDiscard(logger)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = &PanicError{Value: r}
					logger.Error("handler panicked",
						"service", c.Service, "handler", c.Handler, "queue", c.Queue,
						"message_id", msg.UUID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					out = nil
				}
			}()
			return h(msg)
		}
	}
}
