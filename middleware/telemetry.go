package middleware

import (
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
)

// Telemetry emits, for each attempt at handling a message:
//
//   - on success: the queue's handled event (telemetry.HandledEvent, e.g.
//     proposal_received or rollback_completed) if it has one, then
//     message_consumed;
//   - on failure (an error, a panic, or a dead-lettering by PoisonQueue):
//     message_failed with the error, then message_retried with
//     retry_delay_ms if a delayed redelivery was scheduled.
//
// Measurements: count (1), duration_ms (the attempt, all inner middleware
// included), attempt, and latency_ms when the message carries
// telemetry.MetadataPublishedAt. Metadata: queue, service, handler,
// message_id, and error on failure. It must be the outermost middleware.
// A nil bus means telemetry.Default; when nothing listens it costs a few
// atomic loads per message.
func Telemetry(c Consumer, bus *telemetry.Bus) message.HandlerMiddleware {
	if bus == nil {
		bus = telemetry.Default
	}
	handled := telemetry.HandledEvent(c.Queue)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			if !bus.ListeningUnder(telemetry.Prefix) {
				return out, err
			}
			elapsed := time.Since(start)

			d := pubsub.DeliveryOf(msg)
			attempt, queue := 1, c.Queue
			var outcome pubsub.Outcome
			if d != nil {
				attempt, queue = d.Attempt, d.Queue
				outcome = d.Outcome()
			}
			m := telemetry.Measurements{
				telemetry.MeasureCount:    1,
				telemetry.MeasureDuration: ms(elapsed),
				telemetry.MeasureAttempt:  float64(attempt),
			}
			if at, ok := publishedAt(msg); ok {
				m[telemetry.MeasureLatency] = ms(start.Sub(at))
			}
			md := withQueue(telemetry.Metadata{
				telemetry.MetaService: c.Service, telemetry.MetaHandler: c.Handler, telemetry.MetaMessageID: msg.UUID,
			}, queue)

			if err == nil && outcome.DeadLetter == nil {
				if handled != nil {
					bus.Execute(handled, m, md)
				}
				bus.Execute(telemetry.MessageConsumed, m, md)
				return out, err
			}

			switch {
			case err != nil:
				md[telemetry.MetaError] = err.Error()
			case outcome.DeadLetter != nil:
				md[telemetry.MetaError] = outcome.DeadLetter.Error
			}
			bus.Execute(telemetry.MessageFailed, m, md)
			if outcome.Retry && outcome.DeadLetter == nil {
				rm := make(telemetry.Measurements, len(m)+1)
				for k, v := range m {
					rm[k] = v
				}
				rm[telemetry.MeasureRetryDelay] = ms(outcome.RetryDelay)
				bus.Execute(telemetry.MessageRetried, rm, md)
			}
			return out, err
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func publishedAt(msg *message.Message) (time.Time, bool) {
	v := msg.Metadata.Get(telemetry.MetadataPublishedAt)
	if v == "" {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// withQueue sets md's queue from the queue a message was delivered from:
// an instance's queue (addressed and broadcast delivery) is reported as
// its queue and the instance, so that events keep the topology's names.
func withQueue(md telemetry.Metadata, delivered string) telemetry.Metadata {
	queue, instance := pubsub.SplitInstanceQueue(delivered)
	md[telemetry.MetaQueue] = queue
	if instance != "" {
		md[telemetry.MetaInstance] = instance
	}
	return md
}
