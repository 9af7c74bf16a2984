package contracts

import (
	"time"

	"github.com/quantumflow/quantumflow/topology"
)

// The topology's contracts are registered for their queues.
func init() {
	MustRegister[Proposal](topology.ProposalsQueue)
	MustRegister[ExecutionMetrics](topology.MetricsQueue)
	MustRegister[PatternDiscovered](topology.PatternsQueue)
	MustRegister[ConsensusResult](topology.ConsensusQueue)
	MustRegister[RollbackTrigger](topology.RollbackQueue)
	MustRegister[SafetyProfile](topology.SafetyProfilesQueue)
}

// Proposal is what a Singularity instance sends to CentralCloud for a vote
// (proposals_for_consensus_queue).
type Proposal struct {
	Versioned
	// ID identifies the proposal; the consensus result that answers it
	// names it. Required.
	ID string `json:"id"`
	// Instance is the instance that proposes (the origin). Required.
	Instance string `json:"instance"`
	// Change says what the instance wants to change. Required.
	Change string `json:"change"`
	// Risk is the instance's own estimate, 0 (safe) to 1 (dangerous).
	Risk float64 `json:"risk"`
	// Poison and Flaky are the examples' failures on purpose: a poison
	// proposal fails every attempt (and ends as a dead letter), a flaky
	// one fails its first attempt only.
	Poison bool `json:"poison,omitempty"`
	Flaky  bool `json:"flaky,omitempty"`
	// ProposedAt is when the instance made the proposal.
	ProposedAt time.Time `json:"proposed_at,omitzero"`
}

// Schema is quantumflow.proposal/v1.
func (Proposal) Schema() Schema { return Schema{Name: "quantumflow.proposal", Version: 1} }

// Validate checks the required fields and the risk's range.
func (p Proposal) Validate() error {
	return first(required("id", p.ID), required("instance", p.Instance), required("change", p.Change),
		between("risk", p.Risk, 0, 1))
}

// ExecutionMetrics is what an instance reports after running a change
// (metrics_to_guardian_queue).
type ExecutionMetrics struct {
	Versioned
	// ID identifies the report. Required.
	ID string `json:"id"`
	// Instance is the instance that reports (the origin). Required.
	Instance string `json:"instance"`
	// ProposalID is the proposal whose change ran, if any.
	ProposalID string `json:"proposal_id,omitempty"`
	// ErrorRate is the share of failed operations, 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// LatencyMS is the mean latency in milliseconds, not negative.
	LatencyMS float64 `json:"latency_ms"`
	// Flaky makes the handler fail on the first attempt only (examples).
	Flaky bool `json:"flaky,omitempty"`
	// ReportedAt is when the instance measured.
	ReportedAt time.Time `json:"reported_at,omitzero"`
}

// Schema is quantumflow.execution_metrics/v1.
func (ExecutionMetrics) Schema() Schema {
	return Schema{Name: "quantumflow.execution_metrics", Version: 1}
}

// Validate checks the required fields and the ranges.
func (m ExecutionMetrics) Validate() error {
	return first(required("id", m.ID), required("instance", m.Instance),
		between("error_rate", m.ErrorRate, 0, 1), atLeast("latency_ms", m.LatencyMS, 0))
}

// PatternDiscovered is a pattern an instance discovered
// (patterns_for_aggregator_queue).
type PatternDiscovered struct {
	Versioned
	// ID identifies the discovery. Required.
	ID string `json:"id"`
	// Instance is the instance that discovered it (the origin). Required.
	Instance string `json:"instance"`
	// Name names the pattern. Required.
	Name string `json:"name"`
	// Occurrences is how often the instance saw it, not negative.
	Occurrences int `json:"occurrences"`
	// Unsafe patterns make the aggregator tighten the safety profile.
	Unsafe bool `json:"unsafe,omitempty"`
	// DiscoveredAt is when the instance saw it.
	DiscoveredAt time.Time `json:"discovered_at,omitzero"`
}

// Schema is quantumflow.pattern_discovered/v1.
func (PatternDiscovered) Schema() Schema {
	return Schema{Name: "quantumflow.pattern_discovered", Version: 1}
}

// Validate checks the required fields and the count.
func (p PatternDiscovered) Validate() error {
	return first(required("id", p.ID), required("instance", p.Instance), required("name", p.Name),
		atLeast("occurrences", float64(p.Occurrences), 0))
}

// Decision values of a ConsensusResult.
const (
	Approved = "approved"
	Rejected = "rejected"
)

// ConsensusResult is CentralCloud's answer to a proposal
// (consensus_results_queue, addressed to the proposer).
type ConsensusResult struct {
	Versioned
	// ID identifies the result. Required.
	ID string `json:"id"`
	// ProposalID is the proposal answered. Required.
	ProposalID string `json:"proposal_id"`
	// Instance is the instance that proposed, the one the result is for.
	// Required.
	Instance string `json:"instance"`
	// Origin is the CentralCloud instance that decided.
	Origin string `json:"origin_instance,omitempty"`
	// Decision is Approved or Rejected. Required.
	Decision string `json:"decision"`
	// For and Against count the votes, not negative.
	For     int `json:"votes_for"`
	Against int `json:"votes_against"`
	// DecidedAt is when the votes were counted.
	DecidedAt time.Time `json:"decided_at,omitzero"`
}

// Schema is quantumflow.consensus_result/v1.
func (ConsensusResult) Schema() Schema {
	return Schema{Name: "quantumflow.consensus_result", Version: 1}
}

// Validate checks the required fields, the decision and the votes.
func (r ConsensusResult) Validate() error {
	err := first(required("id", r.ID), required("proposal_id", r.ProposalID), required("instance", r.Instance),
		atLeast("votes_for", float64(r.For), 0), atLeast("votes_against", float64(r.Against), 0))
	if err == nil && r.Decision != Approved && r.Decision != Rejected {
		return Field("decision", "must be %q or %q, got %q", Approved, Rejected, r.Decision)
	}
	return err
}

// RollbackTrigger orders an instance to undo a change
// (rollback_triggers_queue, addressed, high priority).
type RollbackTrigger struct {
	Versioned
	// ID identifies the order. Required.
	ID string `json:"id"`
	// Instance is the instance that must roll back ("all": every one).
	// Required.
	Instance string `json:"instance"`
	// Origin is the CentralCloud instance that ordered it.
	Origin string `json:"origin_instance,omitempty"`
	// ProposalID is the proposal whose change is undone, if known.
	ProposalID string `json:"proposal_id,omitempty"`
	// Reason says why. Required.
	Reason string `json:"reason"`
	// ErrorRate is the error rate that caused it, 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// TriggeredAt is when it was ordered.
	TriggeredAt time.Time `json:"triggered_at,omitzero"`
}

// Schema is quantumflow.rollback_trigger/v1.
func (RollbackTrigger) Schema() Schema {
	return Schema{Name: "quantumflow.rollback_trigger", Version: 1}
}

// Validate checks the required fields and the error rate.
func (t RollbackTrigger) Validate() error {
	return first(required("id", t.ID), required("instance", t.Instance), required("reason", t.Reason),
		between("error_rate", t.ErrorRate, 0, 1))
}

// SafetyProfile is the Guardian's current limits for every instance
// (guardian_safety_profiles_queue, broadcast).
type SafetyProfile struct {
	Versioned
	// ID identifies the update. Required.
	ID string `json:"id"`
	// Origin is the CentralCloud instance that issued it.
	Origin string `json:"origin_instance,omitempty"`
	// Version orders the profiles (the profile's own version, not the
	// schema's): an instance keeps the highest. From 1.
	Version int `json:"version"`
	// MaxRisk is the highest risk an instance may still propose, 0 to 1.
	MaxRisk float64 `json:"max_risk"`
	// Reason says what caused the update.
	Reason string `json:"reason,omitempty"`
	// IssuedAt is when it was issued.
	IssuedAt time.Time `json:"issued_at,omitzero"`
}

// Schema is quantumflow.safety_profile/v1.
func (SafetyProfile) Schema() Schema {
	return Schema{Name: "quantumflow.safety_profile", Version: 1}
}

// Validate checks the id, the profile version and the risk's range.
func (p SafetyProfile) Validate() error {
	return first(required("id", p.ID), atLeast("version", float64(p.Version), 1), between("max_risk", p.MaxRisk, 0, 1))
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func required(field, v string) error {
	if v == "" {
		return Field(field, "is required")
	}
	return nil
}

func between(field string, v, lo, hi float64) error {
	if v < lo || v > hi {
		return Field(field, "must be between %g and %g, got %g", lo, hi, v)
	}
	return nil
}

func atLeast(field string, v, lo float64) error {
	if v < lo {
		return Field(field, "must be at least %g, got %g", lo, v)
	}
	return nil
}
