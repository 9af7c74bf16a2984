package handlers_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestVote(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		risk     float64
		decision string
		votes    int
	}{
		{0.1, contracts.Approved, 5},
		{0.5, contracts.Approved, 3},
		{0.6, contracts.Rejected, 2},
		{0.95, contracts.Rejected, 0},
	} {
		r := handlers.Vote(contracts.Proposal{ID: "p", Instance: "i", Risk: c.risk})
		require.Equal(t, c.decision, r.Decision, c.risk)
		require.Equal(t, c.votes, r.For, c.risk)
		require.Equal(t, 5, r.For+r.Against)
		require.Equal(t, "p", r.ProposalID)
		require.Equal(t, "result-p", r.ID, "derived from the proposal's, so a redelivery's answer is a duplicate")
		require.NoError(t, r.Validate())
	}
}

func TestPlanRoundCoversEveryPath(t *testing.T) {
	t.Parallel()
	var poison, flaky, rollbacks, unsafe, malformed, patterns int
	for n := range 20 {
		r := handlers.PlanRound("i", n)
		require.Equal(t, r, handlers.PlanRound("i", n), "deterministic")
		require.NoError(t, r.Proposal.Validate())
		require.NoError(t, r.Metrics.Validate())
		require.GreaterOrEqual(t, r.Proposal.Risk, 0.0)
		require.Less(t, r.Proposal.Risk, 1.0)
		if r.Proposal.Poison {
			poison++
		}
		if r.Proposal.Flaky || r.Metrics.Flaky {
			flaky++
		}
		if r.Metrics.ErrorRate > handlers.RollbackThreshold {
			rollbacks++
		}
		if r.Pattern != nil {
			require.NoError(t, r.Pattern.Validate())
			patterns++
			if r.Pattern.Unsafe {
				unsafe++
			}
		}
		if r.Malformed != nil {
			malformed++
		}
	}
	require.Equal(t, 2, poison)
	require.Positive(t, flaky)
	require.Equal(t, 3, rollbacks)
	require.Equal(t, 10, patterns)
	require.Equal(t, 3, unsafe)
	require.Equal(t, 1, malformed)
}

func delivered(queue, payload string, attempt int) *message.Message {
	msg := message.NewMessage("id-1", []byte(payload))
	pubsub.AttachDelivery(msg, &pubsub.Delivery{Queue: queue, Attempt: attempt})
	return msg
}

func TestFailuresOnPurpose(t *testing.T) {
	t.Parallel()
	cc := (&handlers.CentralCloud{}).Handlers()
	sg := (&handlers.Singularity{}).Handlers()
	propose := cc[topology.HandleProposalForConsensus]

	err := propose(delivered(topology.ProposalsQueue, `{"id":"p","instance":"s1","change":"x","poison":true}`, 1))
	require.ErrorIs(t, err, handlers.ErrPoison)
	require.False(t, middleware.IsPermanent(err), "poison is retried, then dead-lettered")

	err = propose(delivered(topology.ProposalsQueue, `{"id":"p","instance":"s1","change":"x","flaky":true}`, 1))
	require.ErrorIs(t, err, handlers.ErrFlaky)

	for _, c := range []struct {
		h     router.Handler
		queue string
	}{
		{propose, topology.ProposalsQueue},
		{cc[topology.HandleExecutionMetrics], topology.MetricsQueue},
		{cc[topology.HandlePatternDiscovered], topology.PatternsQueue},
		{sg[topology.HandleConsensusResult], topology.ConsensusQueue},
		{sg[topology.HandleRollbackTrigger], topology.RollbackQueue},
		{sg[topology.HandleSafetyProfileUpdate], topology.SafetyProfilesQueue},
	} {
		for payload, want := range map[string]string{
			`{"name": `:             "malformed JSON",
			`{"id": 1}`:             `field "id": want a string, got number`,
			`{}`:                    `field "id": is required`,
			`{"schema_version": 9}`: `field "schema_version": version 9 is newer`,
		} {
			err := c.h(delivered(c.queue, payload, 1))
			require.True(t, middleware.IsPermanent(err), "a payload that fails its contract is dead-lettered at once: %v", err)
			require.ErrorIs(t, err, contracts.ErrInvalid)
			require.ErrorContains(t, err, "queue "+c.queue+": ")
			require.ErrorContains(t, err, want)
		}
	}
}

func TestSafetyProfileKeepsNewest(t *testing.T) {
	t.Parallel()
	sg := &handlers.Singularity{}
	h := sg.Handlers()[topology.HandleSafetyProfileUpdate]
	require.NoError(t, h(delivered(topology.SafetyProfilesQueue, `{"id":"b","version":2,"max_risk":0.7}`, 1)))
	require.NoError(t, h(delivered(topology.SafetyProfilesQueue, `{"id":"a","version":1,"max_risk":0.9}`, 1)))
	require.NoError(t, h(delivered(topology.SafetyProfilesQueue, `{"id":"a","version":1,"max_risk":0.9}`, 2)))
	require.Equal(t, 2, sg.SafetyProfile().Version)
	require.InDelta(t, 0.7, sg.SafetyProfile().MaxRisk, 1e-9)
	require.EqualValues(t, 2, sg.ProfileUpdates.Load(), "a profile delivered twice counts once")
}

func TestNames(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, []string{topology.HandleConsensusResult, topology.HandleRollbackTrigger, topology.HandleSafetyProfileUpdate},
		handlers.Names(topology.Singularity))
	require.ElementsMatch(t, []string{topology.HandleProposalForConsensus, topology.HandleExecutionMetrics, topology.HandlePatternDiscovered},
		handlers.Names(topology.CentralCloud))
	require.Nil(t, handlers.Names("nope"))
	cc, sg := &handlers.CentralCloud{}, &handlers.Singularity{}
	for name := range cc.Handlers() {
		require.Contains(t, handlers.Names(topology.CentralCloud), name)
	}
	for name := range sg.Handlers() {
		require.Contains(t, handlers.Names(topology.Singularity), name)
	}
}
