package topology

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLoadMessageTTL checks a producer's message_ttl: read from the file,
// shown again by JSON, and refused out of range or malformed with the
// entry and the reason named.
func TestLoadMessageTTL(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "singularity:\n  producers:\n    proposals_for_consensus: {message_ttl: 10m}\n")
	cfg, err := Load(LoadOptions{Service: Singularity, LookupEnv: envOf(nil), Path: path})
	require.NoError(t, err)
	p, ok := cfg.Producer(ProposalsQueue)
	require.True(t, ok)
	require.Equal(t, 10*time.Minute, p.MessageTTL)
	other, _ := cfg.Producer(MetricsQueue)
	require.Zero(t, other.MessageTTL, "an entry without message_ttl does not expire")

	b, err := json.Marshal(p)
	require.NoError(t, err)
	require.Contains(t, string(b), `"message_ttl":"10m"`)
	var back Producer
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, p, back)

	for _, tt := range []struct{ value, want string }{
		{"10", "not a duration"},
		{"500ms", "must be 0 (none) or at least 1s"},
		{"-5m", "must not be negative"},
		{"721h", "must be at most 720h"},
	} {
		path := writeConfig(t, "singularity:\n  producers:\n    proposals_for_consensus: {message_ttl: "+tt.value+"}\n")
		_, err := Load(LoadOptions{Service: Singularity, LookupEnv: envOf(nil), Path: path})
		require.ErrorContains(t, err, "singularity.producers.proposals_for_consensus.message_ttl=")
		require.ErrorContains(t, err, tt.want)
	}
	path = writeConfig(t, "singularity:\n  consumers:\n    consensus_results: {message_ttl: 10m}\n")
	_, err = Load(LoadOptions{Service: Singularity, LookupEnv: envOf(nil), Path: path})
	require.ErrorContains(t, err, "message_ttl", "message_ttl is a producer's key")
}
