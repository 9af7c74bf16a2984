package topology

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestServiceConfigJSON(t *testing.T) {
	t.Parallel()
	cfg := mustDefault(t, Singularity)
	b, err := json.Marshal(cfg)
	require.NoError(t, err)

	var raw struct {
		Name      string           `json:"name"`
		Producers []map[string]any `json:"producers"`
		Consumers []map[string]any `json:"consumers"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Equal(t, map[string]any{
		"key": "proposals_for_consensus", "queue_name": ProposalsQueue, "workers": 2.0,
		"max_retries": 3.0, "retry_delay_ms": 1000.0, "priority": "normal",
	}, raw.Producers[0])
	require.Equal(t, map[string]any{
		"key": "rollback_triggers", "queue_name": RollbackQueue, "handler": HandleRollbackTrigger, "workers": 1.0,
		"max_retries": 3.0, "retry_delay_ms": 1000.0, "priority": "high",
	}, raw.Consumers[1])

	var back ServiceConfig
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, cfg, back)
}

// TestSeedFile checks that testdata/seed.yaml is the seed's configuration
// in the file format: MarshalFile writes it, and Load reads it back to
// the defaults.
func TestSeedFile(t *testing.T) {
	t.Parallel()
	const path = "testdata/seed.yaml"
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var body []string
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	got, err := MarshalFile(mustDefault(t, Singularity), mustDefault(t, CentralCloud))
	require.NoError(t, err)
	require.Equal(t, strings.Join(body, ""), string(got), "regenerate %s with MarshalFile", path)

	for _, svc := range Services() {
		cfg, err := Load(LoadOptions{Service: svc, Path: path, LookupEnv: envOf(nil)})
		require.NoError(t, err)
		require.Equal(t, mustDefault(t, svc), cfg)
	}
}

// TestExampleFile loads the commented example of the full format.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "testdata/example.yaml"

	sing, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	require.Equal(t, ServiceConfig{
		Name:        Singularity,
		DatabaseURL: "postgresql://quantum:change-me@db.internal:5432/singularity?sslmode=require",
		Producers: []Producer{
			{Key: "proposals_for_consensus", Queue: ProposalsQueue, Workers: 4, MaxRetries: 5, RetryDelay: 500 * time.Millisecond, Priority: PriorityNormal},
			{Key: "metrics_to_guardian", Queue: MetricsQueue, Workers: 2, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal},
			{Key: "patterns_for_aggregator", Queue: PatternsQueue, Workers: 2, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal},
		},
		Consumers: []Consumer{
			{Key: "consensus_results", Queue: ConsensusQueue, Handler: HandleConsensusResult, Workers: 3, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal},
			{Key: "rollback_triggers", Queue: RollbackQueue, Handler: HandleRollbackTrigger, Workers: 1, MaxRetries: 3, RetryDelay: 250 * time.Millisecond, Priority: PriorityHigh},
			{Key: "safety_profiles", Queue: SafetyProfilesQueue, Handler: HandleSafetyProfileUpdate, Workers: 1, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal},
		},
	}, sing)
	require.NoError(t, ValidateHandlers(sing, []string{HandleConsensusResult, HandleRollbackTrigger, HandleSafetyProfileUpdate}))

	cc, err := Load(LoadOptions{Service: CentralCloud, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	want := mustDefault(t, CentralCloud)
	want.DatabaseURL = "nats://nats.internal:4222"
	want.Producers[1].Workers = 2 // rollback_triggers, explicit
	want.Consumers[0].Workers = 6 // proposals, explicit over medium's 3
	want.Consumers[0].MaxRetries = 10
	want.Consumers[2].Workers = 2 // patterns, medium
	require.Equal(t, want, cc)
}

// TestMarshalFileRoundTrip checks that a loaded configuration written by
// MarshalFile loads back to itself, with no profile or environment.
func TestMarshalFileRoundTrip(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{EnvProfile: ProfileLarge, EnvRetryDelayMS: "1234", EnvDatabaseURL: "postgres://u:p@h/db"})
	var cfgs []ServiceConfig
	for _, svc := range Services() {
		cfg, err := Load(LoadOptions{Service: svc, Path: "testdata/example.yaml", LookupEnv: env})
		require.NoError(t, err)
		cfgs = append(cfgs, cfg)
	}
	out, err := MarshalFile(cfgs...)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "shown.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	for _, want := range cfgs {
		got, err := Load(LoadOptions{Service: want.Name, Path: path, LookupEnv: envOf(nil)})
		require.NoError(t, err)
		require.Equal(t, want, got)
	}

	// One section marshals on its own too.
	one, err := yaml.Marshal(cfgs[0])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(one), "database_url: postgres://u:p@h/db\nproducers:\n    proposals_for_consensus:\n"), string(one))
}
