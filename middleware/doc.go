// Package middleware holds QuantumFlow's Watermill handler middleware. The
// router stacks them, outermost first:
//
//	Telemetry → PoisonQueue → Retry → Timeout → Recoverer → handler
//
// The order matters, and Watermill's own middleware got it wrong for us in
// ways measured on v1.5.1 (see DESIGN.md):
//
//   - Recoverer is innermost so that a panic becomes an error that Retry and
//     PoisonQueue see; the Watermill router's own panic handling only nacks.
//   - Retry does not sleep in process. On a handler error it asks the
//     backend, through the message's pubsub.Delivery, to redeliver the
//     message after a backoff, and returns the error so that the router
//     nacks. The worker is free at once, the other messages of the queue
//     are not held up, and the attempt count lives with the message in the
//     backend (it survives a crash on durable backends).
//   - Timeout bounds each attempt: it derives the deadline from the
//     message's context and restores the context afterwards, so nothing
//     outside the attempt sees a cancelled context.
//   - PoisonQueue is outside Retry: when the chain fails and no retry was
//     scheduled (retries exhausted, or a Permanent error), it marks the
//     delivery dead-lettered and returns nil, so the router acks and the
//     backend moves the message to its dead-letter queue atomically.
//   - Telemetry is outermost so it sees the final outcome of each attempt.
//
// # Inbox
//
// Inbox is not in the stack: added outside it (router.Config.Middlewares),
// it acks a redelivery of a message its handler finished, within a window,
// from an id set in memory. Its limits are in its documentation.
//
// # Messages without a Delivery
//
// A message that did not come from a QuantumFlow backend (a plain Watermill
// subscriber) carries no pubsub.Delivery: its attempt is unknown and nothing
// can schedule a delayed redelivery or a dead letter for it. Retry and
// PoisonQueue then let the error pass through unchanged, the router nacks,
// and the subscriber does whatever it does on nack (usually an immediate
// redelivery). Telemetry reports attempt 1.
package middleware
