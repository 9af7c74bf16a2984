package middleware

import (
	"errors"
	"log/slog"
)

// Consumer identifies the consumer a middleware works for: it names the
// handler and service in dead letters, logs and telemetry.
type Consumer struct {
	// Service is the service name, e.g. "centralcloud".
	Service string
	// Handler is the handler name, e.g. "handle_proposal_for_consensus".
	Handler string
	// Queue is the queue consumed. Used when a message carries no Delivery
	// to say where it came from.
	Queue string
}

// permanentError marks an error that no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: a handler returning it has its message
// dead-lettered at once, without retries. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
