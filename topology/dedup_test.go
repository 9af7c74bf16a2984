package topology

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// TestDedupWindow: dedup_window of an entry reaches its queue's spec and
// round-trips through JSON; an entry without one declares the default.
func TestDedupWindow(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "singularity:\n  producers:\n    proposals_for_consensus:\n      dedup_window: 30s\n")
	cfg, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	spec, ok := cfg.Spec(ProposalsQueue)
	require.True(t, ok)
	require.Equal(t, 30*time.Second, spec.DedupWindow)
	other, _ := cfg.Spec(MetricsQueue)
	require.Zero(t, other.DedupWindow, "zero: DeclareQueue applies pubsub.DefaultDedupWindow")

	b, err := json.Marshal(cfg.Producers[0])
	require.NoError(t, err)
	require.Contains(t, string(b), `"dedup_window":"30s"`)
	var back Producer
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, cfg.Producers[0], back)
}

func TestDedupWindowInvalid(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"1ms": "must be at least 100ms",
		"25h": "must be at most 24h",
		"2":   "not a duration",
	} {
		path := writeConfig(t, "singularity:\n  consumers:\n    rollback_triggers:\n      dedup_window: "+v+"\n")
		_, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
		require.ErrorContains(t, err, "config.yaml:4: singularity.consumers.rollback_triggers.dedup_window=\""+v+"\": "+want)
	}
	cfg := mustDefault(t, Singularity)
	cfg.Producers[0].DedupWindow = pubsub.MaxDedupWindow + time.Second
	require.ErrorContains(t, cfg.Validate(), "singularity.producers.proposals_for_consensus.dedup_window=24h0m1s: must be at most 24h")
}
