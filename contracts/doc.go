// Package contracts holds the message contracts of the QuantumFlow
// topology: one Go type per queue's message, with a schema name and
// version, JSON encoding, and a Validate method that names the field at
// fault. router.Handle and router.Publish use them to hand handlers typed
// values and to refuse a bad payload before it is stored; `quantumflow
// publish` checks payloads for the topology's queues against them.
//
// The six contracts of the topology, registered for their queues:
//
//	Proposal          proposals_for_consensus_queue     quantumflow.proposal
//	ExecutionMetrics  metrics_to_guardian_queue         quantumflow.execution_metrics
//	PatternDiscovered patterns_for_aggregator_queue     quantumflow.pattern_discovered
//	ConsensusResult   consensus_results_queue           quantumflow.consensus_result
//	RollbackTrigger   rollback_triggers_queue           quantumflow.rollback_trigger
//	SafetyProfile     guardian_safety_profiles_queue    quantumflow.safety_profile
//
// # Wire format
//
// A payload is a JSON object. It carries its schema version in the field
// "schema_version" (Versioned); a payload without it is version 1, the
// version every contract starts at. The typed publisher also writes two
// metadata entries, for tools that do not read payloads (the dead-letter
// listing, the dashboard): quantumflow_content_type ("application/json")
// and quantumflow_schema ("NAME/vVERSION", e.g. "quantumflow.proposal/v1").
// Unknown fields are ignored, so that a field removed in a later version
// does not break the decoding of older payloads.
//
// # Versions
//
// A contract's Schema names the newest version the code knows. Decoding
// applies one rule:
//   - the same version is decoded and validated;
//   - an older version (1 up to the known one) is accepted: it is decoded
//     into the current type, upgraded when the type implements Upgrader,
//     and validated; the value's PayloadVersion says which version it was;
//   - a newer version is refused: the consumer cannot know what its fields
//     mean. A typed handler dead-letters such a message at once, and the
//     CLI refuses it with exit 2, so deploy consumers before producers.
//
// The same rule applies to the version in quantumflow_schema, and a
// quantumflow_schema naming another contract is refused (a message
// published to the wrong queue).
//
// # Errors
//
// Every refusal is an *Error (errors.Is(err, ErrInvalid)) naming the
// queue, the contract and the field at fault, e.g.
//
//	queue proposals_for_consensus_queue: quantumflow.proposal/v1: field "risk": must be between 0 and 1, got 1.5
//
// # Your own contracts
//
// A queue of your own gets a contract the same way: a struct that embeds
// Versioned, with value-receiver Schema and Validate methods, registered
// for its queue so that Check (what the CLI's publish runs, in a binary
// that registers it) knows it:
//
//	type Invoice struct {
//		contracts.Versioned
//		ID     string `json:"id"`
//		Amount int64  `json:"amount_cents"`
//	}
//
//	func (Invoice) Schema() contracts.Schema {
//		return contracts.Schema{Name: "acme.invoice", Version: 1}
//	}
//
//	func (i Invoice) Validate() error {
//		if i.ID == "" {
//			return contracts.Field("id", "is required")
//		}
//		return nil
//	}
//
//	func init() { contracts.MustRegister[Invoice]("invoices_queue") }
//
// Then router.Handle(func(ctx context.Context, inv Invoice, m router.Meta)
// error { ... }) is the queue's handler, and router.Publish(ctx, pub, inv)
// publishes one. To change a contract, add fields and raise the version;
// keep old fields readable, or implement Upgrader to fill the new fields
// from the old ones.
package contracts
