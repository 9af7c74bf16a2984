package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/topology"
)

// TestRoundTripCountsMisroutes runs the round trip with several instances
// on the mem backend: addressed, every result reaches its proposer; with
// the results on a work queue, instances take each other's results, which
// the measurement counts and fails on.
func TestRoundTripCountsMisroutes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	e := startEnv(ctx, logger, false, false)
	defer e.close()
	r := &runner{cfg: Config{Logger: logger}, env: e, sizes: quickSizes}
	mem := subjectByName(SubjectMem)

	t.Run("Addressed", func(t *testing.T) {
		var res Result
		p := Params{PayloadBytes: 256, Rate: 100, Instances: 3, Delivery: string(topology.DeliveryAddressed)}
		require.NoError(t, r.roundTripRouter(ctx, mem, p, &res))
		require.Zero(t, res.Misrouted)
		require.Zero(t, res.Missing)
		require.Positive(t, res.Messages)
	})
	t.Run("WorkQueue", func(t *testing.T) {
		var res Result
		p := Params{PayloadBytes: 256, Rate: 100, Instances: 2, Delivery: string(topology.DeliveryWork)}
		err := r.roundTripRouter(ctx, mem, p, &res)
		require.ErrorContains(t, err, "reached an instance other than their proposer")
		require.Positive(t, res.Misrouted)
	})
}
