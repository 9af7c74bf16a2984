package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestSendsRoundsAndStopsGracefully(t *testing.T) {
	t.Parallel()
	const url = "mem://singularity-main-test"
	ctx := context.Background()
	admin, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	defer admin.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-url", url, "-instance", "s1", "-rounds", "4", "-interval", "1ms"}, testutil.Env(nil), &logs)
	}()
	count := func(q string) int {
		st, err := admin.Stats(ctx, q)
		if err != nil {
			return -1
		}
		return int(st.Pending)
	}
	require.Eventually(t, func() bool {
		return count(topology.ProposalsQueue) == 4 && count(topology.MetricsQueue) == 4 && count(topology.PatternsQueue) == 2
	}, 10*time.Second, 10*time.Millisecond, "four rounds: 4 proposals, 4 metrics, 2 patterns")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the instance did not stop")
	}
	require.Contains(t, logs.String(), "singularity stopped")
	require.Equal(t, 4, count(topology.ProposalsQueue), "no more rounds after -rounds")
}

func TestBadUsage(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	for _, args := range [][]string{{"-interval", "0s"}, {"-rounds", "-1"}, {"-nope"}} {
		err := run(context.Background(), args, testutil.Env(nil), &logs)
		var ue usageError
		require.ErrorAs(t, err, &ue, args)
	}
	err := run(context.Background(), []string{"-url", "bogus://u:s3cret@h/"}, testutil.Env(nil), &logs)
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
	require.NotContains(t, err.Error(), "s3cret")
}
