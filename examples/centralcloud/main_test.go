package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAnswersProposalsAndStopsGracefully(t *testing.T) {
	t.Parallel()
	const url = "mem://centralcloud-main-test"
	ctx := context.Background()
	admin, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	defer admin.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, nil, testutil.Env(map[string]string{"QUANTUM_FLOW_DATABASE_URL": url}), &logs)
	}()

	// As a Singularity instance's router publishes it: marked with its
	// instance, which the result goes back to.
	payload, _ := json.Marshal(contracts.Proposal{ID: "p1", Instance: "test", Change: "tune cache", Risk: 0.1})
	proposal := message.NewMessage(watermill.NewUUID(), payload)
	proposal.Metadata.Set(pubsub.MetadataOrigin, "test")
	require.NoError(t, admin.Publisher().Publish(topology.ProposalsQueue, proposal))
	results := pubsub.InstanceQueue(topology.ConsensusQueue, "test")
	require.Eventually(t, func() bool {
		msgs, err := admin.ListPending(ctx, results, 10)
		return err == nil && len(msgs) == 1
	}, 10*time.Second, 10*time.Millisecond, "a consensus result is published for the proposer")
	msgs, err := admin.ListPending(ctx, results, 10)
	require.NoError(t, err)
	var res contracts.ConsensusResult
	require.NoError(t, json.Unmarshal(msgs[0].Payload, &res))
	require.Equal(t, "p1", res.ProposalID)
	require.Equal(t, contracts.Approved, res.Decision)
	require.NoError(t, res.Validate())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not stop")
	}
	require.Contains(t, logs.String(), "centralcloud stopped")
	require.Contains(t, logs.String(), "approved=1")
}

func TestBadConfiguration(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	err := run(context.Background(), nil, testutil.Env(map[string]string{"QUANTUM_FLOW_PROPOSALS_WORKERS": "zero"}), &logs)
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
	require.ErrorContains(t, err, "QUANTUM_FLOW_PROPOSALS_WORKERS")

	err = run(context.Background(), []string{"-nope"}, testutil.Env(nil), &logs)
	var ue usageError
	require.ErrorAs(t, err, &ue)
}
