package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// voterThresholds are CentralCloud's five voters: each votes for a proposal
// whose risk is below its threshold.
var voterThresholds = []float64{0.3, 0.45, 0.6, 0.75, 0.9}

// ErrPoison is what the proposal handler fails with for a proposal marked
// poison, on every attempt.
var ErrPoison = errors.New("proposal marked poison: refusing to vote")

// ErrFlaky is what a handler fails with on the first attempt at a message
// marked flaky.
var ErrFlaky = errors.New("transient failure (flaky message, first attempt)")

// CentralCloud holds CentralCloud's handlers: proposals are voted on and
// answered on consensus_results_queue; execution metrics are received and,
// above RollbackThreshold, answered with a high-priority rollback trigger;
// patterns are aggregated and unsafe ones tighten the safety profile sent
// on guardian_safety_profiles_queue.
//
// Create it, register Handlers with router.New, call Bind with the router
// (for the publishers the handlers answer through), then run the router.
type CentralCloud struct {
	// Logger logs each decision at debug level. Nil discards.
	Logger *slog.Logger

	results, rollbacks, profiles *router.Publisher

	// Counters of handled messages, for examples and tests.
	Proposals, Approved, Rejected, Metrics, Patterns, RollbacksSent, ProfilesSent atomic.Int64
	profileVersion                                                                atomic.Int64
}

// Handlers returns CentralCloud's handlers by the seed's handler names.
func (c *CentralCloud) Handlers() map[string]router.Handler {
	return map[string]router.Handler{
		topology.HandleProposalForConsensus: c.HandleProposal,
		topology.HandleExecutionMetrics:     c.HandleMetrics,
		topology.HandlePatternDiscovered:    c.HandlePattern,
	}
}

// Bind takes the publishers of CentralCloud's producer queues from r.
func (c *CentralCloud) Bind(r *router.Router) error {
	var err error
	if c.results, err = r.Publisher(topology.ConsensusQueue); err != nil {
		return err
	}
	if c.rollbacks, err = r.Publisher(topology.RollbackQueue); err != nil {
		return err
	}
	c.profiles, err = r.Publisher(topology.SafetyProfilesQueue)
	return err
}

func (c *CentralCloud) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// HandleProposal is handle_proposal_for_consensus: it tallies the voters
// and publishes the consensus result. A payload that is not a proposal is
// dead-lettered at once (no retry can fix it); a poison proposal fails on
// every attempt and ends as a dead letter after max_retries.
func (c *CentralCloud) HandleProposal(msg *message.Message) error {
	var p Proposal
	if err := decode(msg, &p); err != nil {
		return err
	}
	if p.Poison {
		return fmt.Errorf("proposal %s from %s: %w", p.ID, p.Instance, ErrPoison)
	}
	if err := flaky(msg, p.Flaky); err != nil {
		return err
	}
	res := Vote(p)
	payload, _ := json.Marshal(res)
	// The result goes back to the instance that proposed.
	if _, err := c.results.Reply(msg.Context(), msg, payload, router.WithMetadata("proposal_id", p.ID)); err != nil {
		return fmt.Errorf("proposal %s: publish consensus result: %w", p.ID, err)
	}
	c.Proposals.Add(1)
	if res.Decision == Approved {
		c.Approved.Add(1)
	} else {
		c.Rejected.Add(1)
	}
	c.log().Debug("proposal voted", "proposal_id", p.ID, "instance", p.Instance, "decision", res.Decision, "for", res.For, "against", res.Against)
	return nil
}

// Vote tallies CentralCloud's voters on a proposal: approved when more vote
// for than against.
func Vote(p Proposal) ConsensusResult {
	res := ConsensusResult{ProposalID: p.ID, Instance: p.Instance}
	for _, th := range voterThresholds {
		if p.Risk < th {
			res.For++
		} else {
			res.Against++
		}
	}
	res.Decision = Rejected
	if res.For > res.Against {
		res.Decision = Approved
	}
	return res
}

// HandleMetrics is handle_execution_metrics: it orders a rollback, at high
// priority, when the error rate is above RollbackThreshold.
func (c *CentralCloud) HandleMetrics(msg *message.Message) error {
	var m ExecutionMetrics
	if err := decode(msg, &m); err != nil {
		return err
	}
	if err := flaky(msg, m.Flaky); err != nil {
		return err
	}
	if m.ErrorRate > RollbackThreshold {
		t := RollbackTrigger{Instance: m.Instance, ProposalID: m.ProposalID, ErrorRate: m.ErrorRate,
			Reason: fmt.Sprintf("error rate %.2f above %.2f", m.ErrorRate, RollbackThreshold)}
		payload, _ := json.Marshal(t)
		// The rollback is for the instance that reported the metrics.
		if _, err := c.rollbacks.Reply(msg.Context(), msg, payload, router.WithPriority(pubsub.PriorityHigh)); err != nil {
			return fmt.Errorf("metrics from %s: publish rollback trigger: %w", m.Instance, err)
		}
		c.RollbacksSent.Add(1)
		c.log().Debug("rollback ordered", "instance", m.Instance, "error_rate", m.ErrorRate)
	}
	c.Metrics.Add(1)
	return nil
}

// HandlePattern is handle_pattern_discovered: an unsafe pattern tightens
// the safety profile, which is broadcast to every instance.
func (c *CentralCloud) HandlePattern(msg *message.Message) error {
	var p Pattern
	if err := decode(msg, &p); err != nil {
		return err
	}
	if p.Unsafe {
		v := c.profileVersion.Add(1)
		prof := SafetyProfile{Version: int(v), MaxRisk: max(0.2, 0.8-0.05*float64(v)),
			Reason: fmt.Sprintf("unsafe pattern %q from %s", p.Name, p.Instance)}
		payload, _ := json.Marshal(prof)
		if _, err := c.profiles.Publish(msg.Context(), payload); err != nil {
			return fmt.Errorf("pattern %s: publish safety profile: %w", p.Name, err)
		}
		c.ProfilesSent.Add(1)
		c.log().Debug("safety profile tightened", "version", v, "max_risk", prof.MaxRisk)
	}
	c.Patterns.Add(1)
	return nil
}

// decode unmarshals a JSON payload. A payload that does not decode is a
// permanent failure: retrying cannot fix it, so it is dead-lettered at once.
func decode(msg *message.Message, v any) error {
	if err := json.Unmarshal(msg.Payload, v); err != nil {
		return middleware.Permanent(fmt.Errorf("message %s: malformed payload: %w", msg.UUID, err))
	}
	return nil
}

// flaky fails the first attempt at a message marked flaky.
func flaky(msg *message.Message, isFlaky bool) error {
	if !isFlaky {
		return nil
	}
	if d := pubsub.DeliveryOf(msg); d != nil && d.Attempt > 1 {
		return nil
	}
	return fmt.Errorf("message %s: %w", msg.UUID, ErrFlaky)
}

// Names returns the handler names the examples register for a service: the
// seed's handler names.
func Names(service string) []string {
	cfg, ok := topology.Default(service)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(cfg.Consumers))
	for _, c := range cfg.Consumers {
		out = append(out, c.Handler)
	}
	return out
}
