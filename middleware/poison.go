package middleware

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
)

// PoisonQueue dead-letters messages that failed for good. When the chain
// inside it returns an error and no retry was scheduled for the delivery
// (retries exhausted, or the error is Permanent), it marks the delivery
// dead-lettered with the error, handler and service, emits
// message_dead_lettered, logs at error level, and returns nil: the router
// acks, and the backend moves the message to the dead-letter queue
// atomically, with its original queue, payload, metadata and attempts.
//
// It must be outside RetryPolicy (the reverse order is Watermill issue
// #645: retry never fires). A message without a Delivery cannot be
// dead-lettered: its error passes through. A nil bus means
// telemetry.Default.
func PoisonQueue(c Consumer, bus *telemetry.Bus, logger *slog.Logger) message.HandlerMiddleware {
	if bus == nil {
		bus = telemetry.Default
	}
	logger = orDiscard(logger)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			d := pubsub.DeliveryOf(msg)
			if d == nil {
				return out, err
			}
			if d.Outcome().Retry && !IsPermanent(err) {
				return out, err
			}
			d.MarkDeadLetter(pubsub.DeadLetterReason{Error: err.Error(), Handler: c.Handler, Service: c.Service})
			logger.Error("message dead-lettered",
				"service", c.Service, "handler", c.Handler, "queue", d.Queue,
				"message_id", msg.UUID, "attempt", d.Attempt, "permanent", IsPermanent(err), "error", err)
			if bus.Listening(telemetry.MessageDeadLettered) {
				md := withQueue(telemetry.Metadata{
					telemetry.MetaService: c.Service, telemetry.MetaHandler: c.Handler,
					telemetry.MetaMessageID: msg.UUID, telemetry.MetaError: err.Error(),
				}, d.Queue)
				bus.Execute(telemetry.MessageDeadLettered,
					telemetry.Measurements{telemetry.MeasureCount: 1, telemetry.MeasureAttempt: float64(d.Attempt)}, md)
			}
			// Nil so the router acks: the backend moves an acked message
			// marked dead-lettered instead of deleting it.
			return nil, nil
		}
	}
}
