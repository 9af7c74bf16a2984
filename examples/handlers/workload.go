package handlers

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/topology"
)

// Round is one round of a Singularity instance's work: a proposal, its
// execution metrics and, every other round, a discovered pattern. PlanRound
// makes rounds; Send publishes one.
type Round struct {
	Proposal contracts.Proposal
	Metrics  contracts.ExecutionMetrics
	// Pattern is nil on rounds without one.
	Pattern *contracts.PatternDiscovered
	// Malformed, when set, is published to patterns_for_aggregator_queue as
	// is: a payload that does not decode, dead-lettered at once.
	Malformed []byte
}

// PlanRound returns round n (from 0) of an instance's work. It is
// deterministic, and mixes in on purpose: proposals that fail once and
// succeed on retry (n%5 == 2), poison proposals that end as dead letters
// (n%10 == 7), metrics that fail once (n%7 == 4), error rates that trigger a
// rollback (n%6 == 5), unsafe patterns that tighten the safety profile
// (n%8 == 0), and on round 13 a malformed pattern.
func PlanRound(instance string, n int) Round {
	r := Round{
		Proposal: contracts.Proposal{
			ID:       fmt.Sprintf("%s-p%03d", instance, n),
			Instance: instance,
			Change:   fmt.Sprintf("tune %s", []string{"cache size", "batch size", "worker pool", "timeout", "prefetch"}[n%5]),
			Risk:     risk(instance, n),
			Flaky:    n%5 == 2,
			Poison:   n%10 == 7,
		},
		Metrics: contracts.ExecutionMetrics{
			ID:         fmt.Sprintf("%s-m%03d", instance, n),
			Instance:   instance,
			ProposalID: fmt.Sprintf("%s-p%03d", instance, n),
			ErrorRate:  0.02,
			LatencyMS:  10 + float64(n%7),
			Flaky:      n%7 == 4,
		},
	}
	if n%6 == 5 {
		r.Metrics.ErrorRate = 0.8
	}
	if n%2 == 0 {
		r.Pattern = &contracts.PatternDiscovered{ID: fmt.Sprintf("%s-pt%03d", instance, n), Instance: instance, Name: fmt.Sprintf("pattern-%d", n/2), Occurrences: 1 + n%4, Unsafe: n%8 == 0}
	}
	if n == 13 {
		r.Malformed = []byte(`{"instance": "` + instance + `", "name": `)
	}
	return r
}

// risk is a deterministic pseudo-random risk in [0, 1).
func risk(instance string, n int) float64 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", instance, n)
	return float64(h.Sum32()%1000) / 1000
}

// Send publishes a round and returns the ids of the messages it published.
func (s *Singularity) Send(ctx context.Context, r Round) ([]string, error) {
	var ids []string
	id, err := s.Propose(ctx, r.Proposal)
	if err != nil {
		return ids, err
	}
	ids = append(ids, id)
	if id, err = s.ReportMetrics(ctx, r.Metrics); err != nil {
		return ids, err
	}
	ids = append(ids, id)
	if r.Pattern != nil {
		if id, err = s.ReportPattern(ctx, *r.Pattern); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	if r.Malformed != nil {
		if id, err = s.PublishRaw(ctx, topology.PatternsQueue, r.Malformed); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
