package handlers

import "time"

// Proposal is what a Singularity instance sends to CentralCloud for a vote
// (proposals_for_consensus_queue).
type Proposal struct {
	// ID identifies the proposal across the result that answers it.
	ID string `json:"id"`
	// Instance is the Singularity instance that proposes.
	Instance string `json:"instance"`
	// Change says what the instance wants to change.
	Change string `json:"change"`
	// Risk is the instance's own estimate, 0 (safe) to 1 (dangerous):
	// CentralCloud's voters approve below their thresholds.
	Risk float64 `json:"risk"`
	// Poison makes CentralCloud's handler fail on every attempt, so the
	// proposal is retried max_retries times and then dead-lettered: the
	// demo's way of showing the dead-letter queue.
	Poison bool `json:"poison,omitempty"`
	// Flaky makes the handler fail on the first attempt only: the retry
	// then succeeds.
	Flaky bool `json:"flaky,omitempty"`
	// ProposedAt is when the instance made the proposal.
	ProposedAt time.Time `json:"proposed_at"`
}

// Decision values of a ConsensusResult.
const (
	Approved = "approved"
	Rejected = "rejected"
)

// ConsensusResult is CentralCloud's answer to a proposal
// (consensus_results_queue).
type ConsensusResult struct {
	ProposalID string `json:"proposal_id"`
	// Instance is the instance that proposed, the one the result is
	// addressed to (consensus_results_queue has addressed delivery).
	Instance string `json:"instance"`
	Decision string `json:"decision"`
	For      int    `json:"votes_for"`
	Against  int    `json:"votes_against"`
}

// ExecutionMetrics is what an instance reports after running a change
// (metrics_to_guardian_queue).
type ExecutionMetrics struct {
	Instance   string  `json:"instance"`
	ProposalID string  `json:"proposal_id,omitempty"`
	ErrorRate  float64 `json:"error_rate"`
	LatencyMS  float64 `json:"latency_ms"`
	// Flaky makes the Guardian's handler fail on the first attempt only.
	Flaky bool `json:"flaky,omitempty"`
}

// RollbackThreshold is the error rate above which the Guardian orders a
// rollback.
const RollbackThreshold = 0.5

// Pattern is a pattern an instance discovered (patterns_for_aggregator_queue).
type Pattern struct {
	Instance    string `json:"instance"`
	Name        string `json:"name"`
	Occurrences int    `json:"occurrences"`
	// Unsafe patterns make the aggregator tighten the safety profile.
	Unsafe bool `json:"unsafe,omitempty"`
}

// RollbackTrigger orders an instance to undo a change
// (rollback_triggers_queue, high priority).
type RollbackTrigger struct {
	Instance   string  `json:"instance"`
	ProposalID string  `json:"proposal_id,omitempty"`
	Reason     string  `json:"reason"`
	ErrorRate  float64 `json:"error_rate"`
}

// SafetyProfile is the Guardian's current limits for every instance
// (guardian_safety_profiles_queue).
type SafetyProfile struct {
	Version int `json:"version"`
	// MaxRisk is the highest risk an instance may still propose.
	MaxRisk float64 `json:"max_risk"`
	// Reason says what caused the update.
	Reason string `json:"reason"`
}
