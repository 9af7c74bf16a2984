package telemetry

import "github.com/quantumflow/quantumflow/topology"

// Prefix is the prefix of every QuantumFlow event. Attach to it to receive
// them all.
var Prefix = Event{"evolution", "QuantumFlow"}

// Names of the seed's events (the last part of each event).
const (
	NameProposalPublished        = "proposal_published"
	NameMetricsPublished         = "metrics_published"
	NamePatternPublished         = "pattern_published"
	NamePublishFailed            = "publish_failed"
	NameConsensusApproved        = "consensus_approved"
	NameConsensusRejected        = "consensus_rejected"
	NameRollbackCompleted        = "rollback_completed"
	NameProfileUpdated           = "profile_updated"
	NameProposalReceived         = "proposal_received"
	NameMetricsReceived          = "metrics_received"
	NamePatternReceived          = "pattern_received"
	NameConsensusResultPublished = "consensus_result_published"
	NameRollbackTriggerPublished = "rollback_trigger_published"
	NameProfileUpdatePublished   = "profile_update_published"
)

// Names of the generic per-message events, emitted for every queue.
const (
	NameMessagePublished    = "message_published"
	NameMessageConsumed     = "message_consumed"
	NameMessageFailed       = "message_failed"
	NameMessageRetried      = "message_retried"
	NameMessageDeadLettered = "message_dead_lettered"
)

// QuantumFlow returns the event [evolution QuantumFlow name].
func QuantumFlow(name string) Event { return Event{"evolution", "QuantumFlow", name} }

// The seed's Singularity events.
var (
	ProposalPublished = QuantumFlow(NameProposalPublished)
	MetricsPublished  = QuantumFlow(NameMetricsPublished)
	PatternPublished  = QuantumFlow(NamePatternPublished)
	PublishFailed     = QuantumFlow(NamePublishFailed)
	ConsensusApproved = QuantumFlow(NameConsensusApproved)
	ConsensusRejected = QuantumFlow(NameConsensusRejected)
	RollbackCompleted = QuantumFlow(NameRollbackCompleted)
	ProfileUpdated    = QuantumFlow(NameProfileUpdated)
)

// The seed's CentralCloud events.
var (
	ProposalReceived         = QuantumFlow(NameProposalReceived)
	MetricsReceived          = QuantumFlow(NameMetricsReceived)
	PatternReceived          = QuantumFlow(NamePatternReceived)
	ConsensusResultPublished = QuantumFlow(NameConsensusResultPublished)
	RollbackTriggerPublished = QuantumFlow(NameRollbackTriggerPublished)
	ProfileUpdatePublished   = QuantumFlow(NameProfileUpdatePublished)
)

// Generic events, emitted for every message on every queue.
var (
	MessagePublished    = QuantumFlow(NameMessagePublished)
	MessageConsumed     = QuantumFlow(NameMessageConsumed)
	MessageFailed       = QuantumFlow(NameMessageFailed)
	MessageRetried      = QuantumFlow(NameMessageRetried)
	MessageDeadLettered = QuantumFlow(NameMessageDeadLettered)
)

// SeedEvents returns the seed's 14 events, Singularity's then CentralCloud's.
func SeedEvents() []Event {
	return []Event{
		ProposalPublished, MetricsPublished, PatternPublished, PublishFailed,
		ConsensusApproved, ConsensusRejected, RollbackCompleted, ProfileUpdated,
		ProposalReceived, MetricsReceived, PatternReceived,
		ConsensusResultPublished, RollbackTriggerPublished, ProfileUpdatePublished,
	}
}

// GenericEvents returns the five per-message events.
func GenericEvents() []Event {
	return []Event{MessagePublished, MessageConsumed, MessageFailed, MessageRetried, MessageDeadLettered}
}

// PublishedEvent returns the seed event a publisher emits for a message
// published to queue, or nil for a queue the seed names none for.
func PublishedEvent(queue string) Event {
	switch queue {
	case topology.ProposalsQueue:
		return ProposalPublished
	case topology.MetricsQueue:
		return MetricsPublished
	case topology.PatternsQueue:
		return PatternPublished
	case topology.ConsensusQueue:
		return ConsensusResultPublished
	case topology.RollbackQueue:
		return RollbackTriggerPublished
	case topology.SafetyProfilesQueue:
		return ProfileUpdatePublished
	}
	return nil
}

// HandledEvent returns the seed event emitted when a message of queue was
// handled successfully, or nil when the seed names none: the
// consensus_results_queue handler reports consensus_approved or
// consensus_rejected itself, because only it knows the outcome.
func HandledEvent(queue string) Event {
	switch queue {
	case topology.ProposalsQueue:
		return ProposalReceived
	case topology.MetricsQueue:
		return MetricsReceived
	case topology.PatternsQueue:
		return PatternReceived
	case topology.RollbackQueue:
		return RollbackCompleted
	case topology.SafetyProfilesQueue:
		return ProfileUpdated
	}
	return nil
}

// Measurement keys.
const (
	// MeasureDuration is how long the operation took, in milliseconds.
	MeasureDuration = "duration_ms"
	// MeasureCount is how many messages the event stands for. Every event
	// is emitted per message, so it is 1 and summing it counts messages.
	MeasureCount = "count"
	// MeasureBatchSize is how many messages were published in the same call.
	MeasureBatchSize = "batch_size"
	// MeasureAttempt is the delivery attempt (1 on first delivery).
	MeasureAttempt = "attempt"
	// MeasureLatency is the time from publish to the start of handling, in
	// milliseconds (needs the publisher's MetadataPublishedAt).
	MeasureLatency = "latency_ms"
	// MeasureRetryDelay is the delay before a scheduled retry, in milliseconds.
	MeasureRetryDelay = "retry_delay_ms"
)

// Metadata keys.
const (
	MetaQueue     = "queue"
	MetaService   = "service"
	MetaHandler   = "handler"
	MetaMessageID = "message_id"
	// MetaInstance is the instance a message was delivered to, on
	// addressed and broadcast queues.
	MetaInstance = "instance"
	MetaError    = "error"
	// MetaPriority is the priority a message was published with.
	MetaPriority = "priority"
)

// MetadataPublishedAt is the message metadata key (not an event metadata
// key) under which the router's publisher records when a message was
// published, as Unix nanoseconds in decimal; the telemetry middleware turns
// it into latency_ms.
const MetadataPublishedAt = "quantumflow_published_at"
