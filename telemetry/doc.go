// Package telemetry is a small event bus in the spirit of Erlang's
// :telemetry: code executes named events with measurements and metadata,
// and handlers attached to an event or to a prefix of events receive them.
//
//	telemetry.Attach("quantum_flow_monitor", telemetry.Prefix,
//		func(e telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
//			log.Println(e, m, md)
//		})
//
// Handlers run synchronously in the emitting goroutine (as in Erlang), so
// they must be quick; a handler that panics is detached. Executing an event
// nobody listens to costs one atomic load.
//
// # Events
//
// Every event lives under [evolution QuantumFlow]. The seed's 14 events keep
// their exact names:
//
//	Singularity:  proposal_published, metrics_published, pattern_published,
//	              publish_failed, consensus_approved, consensus_rejected,
//	              rollback_completed, profile_updated
//	CentralCloud: proposal_received, metrics_received, pattern_received,
//	              consensus_result_published, rollback_trigger_published,
//	              profile_update_published
//
// Who emits what:
//
//   - The router's Publisher emits, per message published, the queue's
//     "published" event (PublishedEvent) — proposals_for_consensus_queue:
//     proposal_published, metrics_to_guardian_queue: metrics_published,
//     patterns_for_aggregator_queue: pattern_published,
//     consensus_results_queue: consensus_result_published,
//     rollback_triggers_queue: rollback_trigger_published,
//     guardian_safety_profiles_queue: profile_update_published — followed by
//     message_published. A failed publish emits publish_failed instead.
//   - The telemetry middleware emits, when a handler succeeds, the queue's
//     "handled" event (HandledEvent) — proposals_for_consensus_queue:
//     proposal_received, metrics_to_guardian_queue: metrics_received,
//     patterns_for_aggregator_queue: pattern_received,
//     rollback_triggers_queue: rollback_completed,
//     guardian_safety_profiles_queue: profile_updated — followed by
//     message_consumed. consensus_results_queue has no such event.
//   - consensus_approved and consensus_rejected are domain outcomes: the
//     consensus handler emits them itself with Execute.
//   - Generic events, for every queue, so metrics can count each stage:
//     message_published (publisher), message_consumed (handler succeeded),
//     message_failed (handler returned an error or panicked, once per
//     failed attempt), message_retried (a delayed redelivery was scheduled),
//     message_dead_lettered (the message was moved to the dead-letter queue,
//     after its last retry or on a permanent error).
//
// Measurements (milliseconds as float64): duration_ms, count (1: events are
// per message), attempt, latency_ms (publish to start of handling, when the
// message carries MetadataPublishedAt), retry_delay_ms, batch_size.
// Metadata: queue, service, handler, message_id, error, priority.
package telemetry
