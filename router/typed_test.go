package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// TestTypedHandlerAndPublisher: a typed publisher's proposals reach a
// typed handler with their Meta; bad payloads published raw are
// dead-lettered on their first attempt, the error naming queue and field.
func TestTypedHandlerAndPublisher(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	var mu sync.Mutex
	got := map[string]router.Meta{}
	var calls int
	handle := router.Handle(func(ctx context.Context, p contracts.Proposal, m router.Meta) error {
		require.NotNil(t, ctx)
		mu.Lock()
		defer mu.Unlock()
		calls++
		got[p.ID] = m
		return nil
	})
	cc, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: handle},
	})
	require.NoError(t, err)
	stop := start(t, cc)

	sgCfg := service(t, topology.Singularity, nil)
	sgCfg.InstanceID = "s1"
	sg, err := router.New(router.Config{Service: sgCfg, Backend: b, Handlers: map[string]router.Handler{
		topology.HandleConsensusResult: ok, topology.HandleRollbackTrigger: ok, topology.HandleSafetyProfileUpdate: ok,
	}})
	require.NoError(t, err)
	pub, err := sg.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	id, err := router.Publish(context.Background(), pub, contracts.Proposal{ID: "p1", Instance: "s1", Change: "tune cache", Risk: 0.2})
	require.NoError(t, err)

	// Refused before anything is stored: invalid, or another contract.
	_, err = router.Publish(context.Background(), pub, contracts.Proposal{ID: "p2", Instance: "s1"})
	require.ErrorIs(t, err, contracts.ErrInvalid)
	require.ErrorContains(t, err, `queue proposals_for_consensus_queue: quantumflow.proposal/v1: field "change": is required`)
	_, err = router.Publish(context.Background(), pub, contracts.SafetyProfile{ID: "sp", Version: 1})
	require.ErrorContains(t, err, "a quantumflow.safety_profile/v1 is not this queue's contract")

	bad := []string{
		`{"id": `, // malformed
		`{"id":"p3","instance":"s1","change":"x","risk":"high"}`,                 // wrong type
		`{"instance":"s1","change":"x"}`,                                         // missing id
		`{"schema_version":2,"id":"p4","instance":"s1","change":"x","risk":0.1}`, // newer
	}
	publish(t, b, topology.ProposalsQueue, len(bad), func(i int) string { return bad[i] })
	require.Eventually(t, func() bool { return len(deadLetters(t, b, topology.ProposalsQueue)) == len(bad) }, waitFor, 5*time.Millisecond)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 }, waitFor, 5*time.Millisecond)
	require.NoError(t, stop())

	want := map[string]string{
		"m-0000": "malformed JSON",
		"m-0001": `field "risk": want a number, got string`,
		"m-0002": `field "id": is required`,
		"m-0003": `field "schema_version": version 2 is newer`,
	}
	for _, dl := range deadLetters(t, b, topology.ProposalsQueue) {
		require.Equal(t, 1, dl.Attempts, "dead-lettered at once: %s", dl.Error)
		require.Contains(t, dl.Error, "queue proposals_for_consensus_queue: quantumflow.proposal/v1: ")
		require.Contains(t, dl.Error, want[dl.ID])
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, calls, "bad payloads never reach the handler")
	m := got["p1"]
	require.Equal(t, id, m.ID)
	require.Equal(t, topology.ProposalsQueue, m.Queue)
	require.Equal(t, 1, m.Attempt)
	require.Equal(t, "s1", m.Origin)
	require.Empty(t, m.Instance, "a work queue")
	require.Equal(t, "quantumflow.proposal/v1", m.Schema.String())
	require.False(t, m.PublishedAt.IsZero())
	require.Equal(t, "quantumflow.proposal/v1", m.Message.Metadata.Get(contracts.MetadataSchema))
	require.Equal(t, contracts.ContentTypeJSON, m.Message.Metadata.Get(contracts.MetadataContentType))
}
