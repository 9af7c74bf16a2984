package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quantumflow/quantumflow/contracts"
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
// The handlers are idempotent: a message delivered twice is counted once,
// and what it is answered with carries an id derived from it (a
// proposal's result is "result-" and the proposal's id), so that the
// receiver drops the answer to a redelivery too. The answers' message ids
// stay random: a business id may come again in a later run, and on NATS a
// message id seen within the duplicate window is dropped.
//
// Create it, register Handlers with router.New, call Bind with the router
// (for the publishers the handlers answer through), then run the router.
type CentralCloud struct {
	// Instance names CentralCloud in what it publishes (origin_instance).
	// Defaults to the router's instance id (Bind).
	Instance string
	// Logger logs each decision at debug level. Nil discards.
	Logger *slog.Logger

	results, rollbacks, profiles *router.Publisher

	// Counters of handled messages, for examples and tests: each message
	// counts once however often it is delivered.
	Proposals, Approved, Rejected, Metrics, Patterns, RollbacksSent, ProfilesSent atomic.Int64

	proposals, metrics, patterns applied
	profileMu                    sync.Mutex
	profileVersion               int
	profileOf                    map[string]int // pattern id -> the profile version it caused
}

// Handlers returns CentralCloud's handlers by the seed's handler names.
func (c *CentralCloud) Handlers() map[string]router.Handler {
	return map[string]router.Handler{
		topology.HandleProposalForConsensus: router.Handle(c.HandleProposal),
		topology.HandleExecutionMetrics:     router.Handle(c.HandleMetrics),
		topology.HandlePatternDiscovered:    router.Handle(c.HandlePattern),
	}
}

// Bind takes the publishers of CentralCloud's producer queues from r, and
// r's instance id when Instance is empty.
func (c *CentralCloud) Bind(r *router.Router) error {
	c.Instance = cmp.Or(c.Instance, r.InstanceID())
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
// and answers the proposer with the consensus result. A poison proposal
// fails on every attempt and ends as a dead letter after max_retries; one
// that does not decode never gets here (router.Handle dead-letters it).
func (c *CentralCloud) HandleProposal(ctx context.Context, p contracts.Proposal, m router.Meta) error {
	if c.proposals.has(p.ID) {
		return nil // answered already: a duplicate delivery
	}
	if p.Poison {
		return fmt.Errorf("proposal %s from %s: %w", p.ID, p.Instance, ErrPoison)
	}
	if err := flaky(m, p.Flaky); err != nil {
		return err
	}
	res := Vote(p)
	res.Origin, res.DecidedAt = c.Instance, time.Now().UTC()
	// The result goes back to the instance that proposed.
	if _, err := router.Publish(ctx, c.results, res, router.To(m.Origin), router.WithMetadata("proposal_id", p.ID)); err != nil {
		return fmt.Errorf("proposal %s: publish consensus result: %w", p.ID, err)
	}
	if !c.proposals.mark(p.ID) {
		return nil
	}
	c.Proposals.Add(1)
	if res.Decision == contracts.Approved {
		c.Approved.Add(1)
	} else {
		c.Rejected.Add(1)
	}
	c.log().Debug("proposal voted", "proposal_id", p.ID, "instance", p.Instance, "decision", res.Decision, "for", res.For, "against", res.Against)
	return nil
}

// Vote tallies CentralCloud's voters on a proposal: approved when more vote
// for than against. The result's id is derived from the proposal's.
func Vote(p contracts.Proposal) contracts.ConsensusResult {
	res := contracts.ConsensusResult{ID: "result-" + p.ID, ProposalID: p.ID, Instance: p.Instance}
	for _, th := range voterThresholds {
		if p.Risk < th {
			res.For++
		} else {
			res.Against++
		}
	}
	res.Decision = contracts.Rejected
	if res.For > res.Against {
		res.Decision = contracts.Approved
	}
	return res
}

// HandleMetrics is handle_execution_metrics: it orders a rollback, at high
// priority, when the error rate is above RollbackThreshold.
func (c *CentralCloud) HandleMetrics(ctx context.Context, mt contracts.ExecutionMetrics, m router.Meta) error {
	if c.metrics.has(mt.ID) {
		return nil
	}
	if err := flaky(m, mt.Flaky); err != nil {
		return err
	}
	rollback := mt.ErrorRate > RollbackThreshold
	if rollback {
		t := contracts.RollbackTrigger{ID: "rollback-" + mt.ID, Instance: mt.Instance, Origin: c.Instance,
			ProposalID: mt.ProposalID, ErrorRate: mt.ErrorRate, TriggeredAt: time.Now().UTC(),
			Reason: fmt.Sprintf("error rate %.2f above %.2f", mt.ErrorRate, RollbackThreshold)}
		// The rollback is for the instance that reported the metrics.
		if _, err := router.Publish(ctx, c.rollbacks, t, router.To(m.Origin), router.WithPriority(pubsub.PriorityHigh)); err != nil {
			return fmt.Errorf("metrics %s from %s: publish rollback trigger: %w", mt.ID, mt.Instance, err)
		}
	}
	if !c.metrics.mark(mt.ID) {
		return nil
	}
	if rollback {
		c.RollbacksSent.Add(1)
		c.log().Debug("rollback ordered", "instance", mt.Instance, "error_rate", mt.ErrorRate)
	}
	c.Metrics.Add(1)
	return nil
}

// HandlePattern is handle_pattern_discovered: an unsafe pattern tightens
// the safety profile, which is broadcast to every instance. A pattern
// delivered twice tightens it once.
func (c *CentralCloud) HandlePattern(ctx context.Context, p contracts.PatternDiscovered, _ router.Meta) error {
	if c.patterns.has(p.ID) {
		return nil
	}
	if p.Unsafe {
		v := c.profileVersionFor(p.ID)
		prof := contracts.SafetyProfile{ID: "profile-" + p.ID, Origin: c.Instance, Version: v,
			MaxRisk: max(0.2, 0.8-0.05*float64(v)), IssuedAt: time.Now().UTC(),
			Reason: fmt.Sprintf("unsafe pattern %q from %s", p.Name, p.Instance)}
		if _, err := router.Publish(ctx, c.profiles, prof); err != nil {
			return fmt.Errorf("pattern %s: publish safety profile: %w", p.ID, err)
		}
	}
	if !c.patterns.mark(p.ID) {
		return nil
	}
	if p.Unsafe {
		c.ProfilesSent.Add(1)
		c.log().Debug("safety profile tightened", "pattern_id", p.ID)
	}
	c.Patterns.Add(1)
	return nil
}

// profileVersionFor returns the profile version an unsafe pattern causes:
// a new one the first time, the same one for a redelivery whose first
// publish failed.
func (c *CentralCloud) profileVersionFor(patternID string) int {
	c.profileMu.Lock()
	defer c.profileMu.Unlock()
	if v, ok := c.profileOf[patternID]; ok {
		return v
	}
	if c.profileOf == nil {
		c.profileOf = map[string]int{}
	}
	c.profileVersion++
	c.profileOf[patternID] = c.profileVersion
	return c.profileVersion
}

// flaky fails the first attempt at a message marked flaky.
func flaky(m router.Meta, isFlaky bool) error {
	if !isFlaky || m.Attempt > 1 {
		return nil
	}
	return fmt.Errorf("message %s: %w", m.ID, ErrFlaky)
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
