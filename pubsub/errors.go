package pubsub

import "errors"

// Sentinel errors shared by every backend. Backends wrap them with %w and
// the queue name, so callers test with errors.Is.
var (
	// ErrUnknownScheme is returned by Open for a URL whose scheme no
	// registered backend handles.
	ErrUnknownScheme = errors.New("pubsub: unknown URL scheme")
	// ErrInvalidURL is returned by Open for a URL that cannot be parsed or
	// carries an unknown or bad query parameter.
	ErrInvalidURL = errors.New("pubsub: invalid URL")
	// ErrUnsupported is returned when a backend lacks a required capability.
	ErrUnsupported = errors.New("pubsub: capability not supported by backend")
	// ErrClosed is returned by operations on a closed backend, publisher or
	// subscriber.
	ErrClosed = errors.New("pubsub: closed")
	// ErrQueueNotFound is returned for a queue the backend does not know.
	ErrQueueNotFound = errors.New("pubsub: queue not found")
	// ErrInvalidQueueName is returned for an empty or malformed queue name.
	ErrInvalidQueueName = errors.New("pubsub: invalid queue name")
	// ErrNotInitialized is returned when the backend's storage has not been
	// created yet (run `quantumflow init`).
	ErrNotInitialized = errors.New("pubsub: storage not initialized")
	// ErrUnavailable is returned when the backend failed on a transient
	// condition (connection lost, cluster leader election, server
	// restarting) and gave up retrying; a later call may succeed.
	ErrUnavailable = errors.New("pubsub: backend unavailable")
	// ErrInvalidArgument is returned for an argument the backend refused.
	ErrInvalidArgument = errors.New("pubsub: invalid argument")
	// ErrMessageNotFound is returned for a message id the backend does not
	// hold (never published, or acknowledged since).
	ErrMessageNotFound = errors.New("pubsub: message not found")
	// ErrMessageInFlight is returned by DeleteMessage for a message a
	// consumer holds: it can be deleted once it is back in its queue.
	ErrMessageInFlight = errors.New("pubsub: message in flight")
)
