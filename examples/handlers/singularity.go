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

	"github.com/ThreeDotsLabs/watermill"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Singularity holds one Singularity instance's handlers and its side of the
// conversation: it proposes changes, reports execution metrics and
// patterns, and handles what CentralCloud sends back — consensus results
// (emitting consensus_approved or consensus_rejected), rollback triggers
// and safety profile updates.
//
// Create it, register Handlers with router.New, call Bind with the router,
// then run the router.
type Singularity struct {
	// Instance names the instance in what it publishes.
	Instance string
	// Telemetry is the bus consensus events go to; the router's bus.
	// Defaults to telemetry.Default.
	Telemetry *telemetry.Bus
	// Logger logs each message handled at debug level. Nil discards.
	Logger *slog.Logger

	proposals, metrics, patterns *router.Publisher

	// Counters of handled messages, for examples and tests: each message
	// counts once however often it is delivered.
	Approved, Rejected, Rollbacks, ProfileUpdates atomic.Int64
	// ResultsForOthers counts consensus results for another instance's
	// proposal, RollbacksForOthers rollbacks naming another instance: with
	// addressed delivery both stay 0.
	ResultsForOthers, RollbacksForOthers atomic.Int64

	results, rollbacks, profiles applied

	mu      sync.Mutex
	profile contracts.SafetyProfile // the newest seen
}

// Handlers returns the instance's handlers by the seed's handler names.
func (s *Singularity) Handlers() map[string]router.Handler {
	return map[string]router.Handler{
		topology.HandleConsensusResult:     router.Handle(s.HandleConsensusResult),
		topology.HandleRollbackTrigger:     router.Handle(s.HandleRollbackTrigger),
		topology.HandleSafetyProfileUpdate: router.Handle(s.HandleSafetyProfileUpdate),
	}
}

// Bind takes the publishers of Singularity's producer queues from r.
func (s *Singularity) Bind(r *router.Router) error {
	var err error
	if s.proposals, err = r.Publisher(topology.ProposalsQueue); err != nil {
		return err
	}
	if s.metrics, err = r.Publisher(topology.MetricsQueue); err != nil {
		return err
	}
	s.patterns, err = r.Publisher(topology.PatternsQueue)
	return err
}

func (s *Singularity) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Singularity) bus() *telemetry.Bus {
	if s.Telemetry == nil {
		return telemetry.Default
	}
	return s.Telemetry
}

// Propose sends a proposal to CentralCloud and returns the message id.
// A missing id, instance or time is filled in.
func (s *Singularity) Propose(ctx context.Context, p contracts.Proposal) (string, error) {
	p.ID = cmp.Or(p.ID, watermill.NewUUID())
	p.Instance = cmp.Or(p.Instance, s.Instance)
	if p.ProposedAt.IsZero() {
		p.ProposedAt = time.Now().UTC()
	}
	return publish(ctx, s.proposals, p)
}

// ReportMetrics sends execution metrics to the Guardian.
func (s *Singularity) ReportMetrics(ctx context.Context, m contracts.ExecutionMetrics) (string, error) {
	m.ID = cmp.Or(m.ID, watermill.NewUUID())
	m.Instance = cmp.Or(m.Instance, s.Instance)
	if m.ReportedAt.IsZero() {
		m.ReportedAt = time.Now().UTC()
	}
	return publish(ctx, s.metrics, m)
}

// ReportPattern sends a discovered pattern to the aggregator.
func (s *Singularity) ReportPattern(ctx context.Context, p contracts.PatternDiscovered) (string, error) {
	p.ID = cmp.Or(p.ID, watermill.NewUUID())
	p.Instance = cmp.Or(p.Instance, s.Instance)
	if p.DiscoveredAt.IsZero() {
		p.DiscoveredAt = time.Now().UTC()
	}
	return publish(ctx, s.patterns, p)
}

// PublishRaw publishes a payload as is to one of the instance's producer
// queues; the demo uses it to send a malformed message.
func (s *Singularity) PublishRaw(ctx context.Context, queue string, payload []byte) (string, error) {
	var p *router.Publisher
	switch queue {
	case topology.ProposalsQueue:
		p = s.proposals
	case topology.MetricsQueue:
		p = s.metrics
	case topology.PatternsQueue:
		p = s.patterns
	default:
		return "", fmt.Errorf("instance %s: %w %q: not a singularity producer queue", s.Instance, pubsub.ErrQueueNotFound, queue)
	}
	if p == nil {
		return "", errNotBound
	}
	return p.Publish(ctx, payload)
}

var errNotBound = errors.New("handlers: not bound to a router (call Bind)")

// publish publishes v with p, which Bind set.
func publish[T contracts.Contract](ctx context.Context, p *router.Publisher, v T) (string, error) {
	if p == nil {
		return "", errNotBound
	}
	return router.Publish(ctx, p, v)
}

// HandleConsensusResult is handle_consensus_result: it applies or drops the
// proposal and emits consensus_approved or consensus_rejected, once per
// proposal however often the result is delivered.
func (s *Singularity) HandleConsensusResult(_ context.Context, r contracts.ConsensusResult, m router.Meta) error {
	if !s.results.mark(r.ProposalID) {
		return nil
	}
	if r.Instance != s.Instance {
		s.ResultsForOthers.Add(1)
	}
	ev := telemetry.ConsensusRejected
	if r.Decision == contracts.Approved {
		ev = telemetry.ConsensusApproved
		s.Approved.Add(1)
	} else {
		s.Rejected.Add(1)
	}
	s.bus().Execute(ev, telemetry.Measurements{telemetry.MeasureCount: 1, "votes_for": float64(r.For), "votes_against": float64(r.Against)},
		telemetry.Metadata{
			telemetry.MetaQueue: topology.ConsensusQueue, telemetry.MetaService: topology.Singularity,
			telemetry.MetaHandler: topology.HandleConsensusResult, telemetry.MetaMessageID: m.ID,
			"proposal_id": r.ProposalID, "instance": s.Instance, "proposer": r.Instance,
		})
	s.log().Debug("consensus result", "instance", s.Instance, "proposal_id", r.ProposalID, "decision", r.Decision)
	return nil
}

// HandleRollbackTrigger is handle_rollback_trigger: it rolls the change
// back (the router emits rollback_completed once it returns nil), once per
// order.
func (s *Singularity) HandleRollbackTrigger(_ context.Context, t contracts.RollbackTrigger, _ router.Meta) error {
	if !s.rollbacks.mark(t.ID) {
		return nil
	}
	if t.Instance != s.Instance && t.Instance != pubsub.InstanceAll {
		s.RollbacksForOthers.Add(1)
	}
	s.Rollbacks.Add(1)
	s.log().Debug("rollback", "instance", s.Instance, "for", t.Instance, "reason", t.Reason)
	return nil
}

// HandleSafetyProfileUpdate is handle_safety_profile_update: it adopts a
// profile newer than the one it has (updates may arrive out of order, and
// twice).
func (s *Singularity) HandleSafetyProfileUpdate(_ context.Context, p contracts.SafetyProfile, _ router.Meta) error {
	s.mu.Lock()
	if p.Version > s.profile.Version {
		s.profile = p
	}
	s.mu.Unlock()
	if s.profiles.mark(p.ID) {
		s.ProfileUpdates.Add(1)
	}
	s.log().Debug("safety profile", "instance", s.Instance, "version", p.Version, "max_risk", p.MaxRisk)
	return nil
}

// SafetyProfile returns the newest safety profile the instance has seen
// (the zero value before any).
func (s *Singularity) SafetyProfile() contracts.SafetyProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profile
}
