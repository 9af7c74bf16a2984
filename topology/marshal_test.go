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
		Name               string           `json:"name"`
		InstanceTTL        string           `json:"instance_ttl"`
		BroadcastRetention string           `json:"broadcast_retention"`
		Producers          []map[string]any `json:"producers"`
		Consumers          []map[string]any `json:"consumers"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	require.Equal(t, "24h", raw.InstanceTTL, "a Go duration, as the file and the environment have it")
	require.Equal(t, "168h", raw.BroadcastRetention)
	require.Equal(t, map[string]any{
		"key": "proposals_for_consensus", "queue_name": ProposalsQueue, "workers": 2.0,
		"max_retries": 3.0, "retry_delay_ms": 1000.0, "priority": "normal", "delivery": "work",
	}, raw.Producers[0])
	require.Equal(t, map[string]any{
		"key": "rollback_triggers", "queue_name": RollbackQueue, "handler": HandleRollbackTrigger, "workers": 1.0,
		"max_retries": 3.0, "retry_delay_ms": 1000.0, "priority": "high", "delivery": "addressed",
	}, raw.Consumers[1])
	require.Equal(t, map[string]any{
		"key": "safety_profiles", "queue_name": SafetyProfilesQueue, "handler": HandleSafetyProfileUpdate, "workers": 1.0,
		"max_retries": 3.0, "retry_delay_ms": 1000.0, "priority": "normal", "delivery": "broadcast",
	}, raw.Consumers[2])
	require.NotContains(t, string(b), "messaging_url", "an unset messaging_url is left out")

	var back ServiceConfig
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, cfg, back)

	cfg.MessagingURL = "nats://nats.internal:4222"
	cfg.InstanceTTL, cfg.BroadcastRetention = 1500*time.Millisecond, 90*time.Minute
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.Contains(t, string(b), `"messaging_url":"nats://nats.internal:4222"`)
	require.Contains(t, string(b), `"instance_ttl":"1.5s","broadcast_retention":"1h30m"`)
	back = ServiceConfig{}
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, cfg, back)

	cfg.InstanceTTL, cfg.BroadcastRetention = 0, 0
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NotContains(t, string(b), "instance_ttl", "zero (the default) is left out")
	require.ErrorContains(t, json.Unmarshal([]byte(`{"instance_ttl":"a day"}`), &back), "instance_ttl")
}

// TestSeedFile loads testdata/seed.yaml, the seed's two
// quantum_flow_queues blocks written as YAML with the seed's keys
// (handler and handler_method included), unchanged for both services: it
// is exactly the seed's defaults.
func TestSeedFile(t *testing.T) {
	t.Parallel()
	const path = "testdata/seed.yaml"
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(raw), "handler: Singularity.Evolution.QuantumFlow.Consumers\n      handler_method: handle_consensus_result\n")
	require.Contains(t, string(raw), "handler: CentralCloud.Evolution.QuantumFlow.Consumers\n      handler_method: handle_proposal_for_consensus\n")
	for _, svc := range Services() {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(LoadOptions{Service: svc, Path: path, LookupEnv: envOf(nil)})
			require.NoError(t, err)
			require.Equal(t, mustDefault(t, svc), cfg)
		})
	}
}

// TestExampleFile loads the commented example of the full format.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "testdata/example.yaml"

	sing, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	require.Equal(t, ServiceConfig{
		Name:               Singularity,
		DatabaseURL:        "postgresql://quantum:change-me@db.internal:5432/singularity?sslmode=require",
		MessagingURL:       "nats://nats.internal:4222",
		InstanceID:         "singularity-eu-1",
		InstanceTTL:        12 * time.Hour,
		BroadcastRetention: 72 * time.Hour,
		Producers: []Producer{
			{Key: "proposals_for_consensus", Queue: ProposalsQueue, Workers: 4, MaxRetries: 5, RetryDelay: 500 * time.Millisecond, Priority: PriorityNormal, Delivery: DeliveryWork, DedupWindow: 10 * time.Minute},
			{Key: "metrics_to_guardian", Queue: MetricsQueue, Workers: 2, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal, Delivery: DeliveryWork, MessageTTL: time.Hour},
			{Key: "patterns_for_aggregator", Queue: PatternsQueue, Workers: 2, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal, Delivery: DeliveryWork},
		},
		Consumers: []Consumer{
			{Key: "consensus_results", Queue: ConsensusQueue, Handler: HandleConsensusResult, Workers: 3, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal, Delivery: DeliveryAddressed},
			{Key: "rollback_triggers", Queue: RollbackQueue, Handler: HandleRollbackTrigger, Workers: 1, MaxRetries: 3, RetryDelay: 250 * time.Millisecond, Priority: PriorityHigh, Delivery: DeliveryAddressed},
			{Key: "safety_profiles", Queue: SafetyProfilesQueue, Handler: HandleSafetyProfileUpdate, Workers: 1, MaxRetries: 3, RetryDelay: time.Second, Priority: PriorityNormal, Delivery: DeliveryBroadcast},
		},
	}, sing)
	require.NoError(t, ValidateHandlers(sing, []string{HandleConsensusResult, HandleRollbackTrigger, HandleSafetyProfileUpdate}))

	cc, err := Load(LoadOptions{Service: CentralCloud, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	want := mustDefault(t, CentralCloud)
	want.DatabaseURL = "postgresql://quantum:change-me@db.internal:5432/central_services?sslmode=require"
	want.MessagingURL = "nats://nats.internal:4222"
	want.InstanceID = "central"
	want.InstanceTTL = 12 * time.Hour
	want.BroadcastRetention = 72 * time.Hour
	want.Producers[1].Workers = 2 // rollback_triggers, explicit
	want.Consumers[0].Workers = 6 // proposals, explicit over medium's 3
	want.Consumers[0].MaxRetries = 10
	want.Consumers[0].DedupWindow = 10 * time.Minute
	want.Consumers[2].Workers = 2 // patterns, medium
	require.Equal(t, want, cc)

	// Two databases, one messaging backend: the pair works together.
	require.NoError(t, CheckPair(sing, cc))
}

// TestMarshalFileRoundTrip checks that a loaded configuration written by
// MarshalFile loads back to itself, with no profile or environment.
func TestMarshalFileRoundTrip(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{EnvProfile: ProfileLarge, EnvRetryDelayMS: "1234", EnvDatabaseURL: "postgres://u:p@h/db", EnvInstanceID: "i-7"})
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

	// One section marshals on its own too, its workers explained.
	one, err := yaml.Marshal(cfgs[0])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(one), "database_url: postgres://u:p@h/db\n"+
		"messaging_url: nats://nats.internal:4222\n"+
		"instance_id: i-7\n"+
		"instance_ttl: 12h\n"+
		"broadcast_retention: 72h\n"+
		"# workers: the most publishes of the queue this service runs at once\n"+
		"producers:\n"+
		"    proposals_for_consensus:\n"), string(one))
	require.Contains(t, string(one), "\n# workers: the most messages of the queue this service handles at once\nconsumers:\n")
	require.Contains(t, string(one), "\n        delivery: addressed\n")
}

// TestMarshalFileDefaults checks what `config show` writes for the seed's
// configuration: every key of the format, messaging_url only when set,
// each side's workers explained.
func TestMarshalFileDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustDefault(t, Singularity)
	cfg.InstanceID = "s-1"
	out, err := MarshalFile(cfg)
	require.NoError(t, err)
	require.Equal(t, `singularity:
  database_url: postgresql://localhost/singularity
  instance_id: s-1
  instance_ttl: 24h
  broadcast_retention: 168h
  # workers: the most publishes of the queue this service runs at once
  producers:
    proposals_for_consensus:
      queue_name: proposals_for_consensus_queue
      workers: 2
      max_retries: 3
      retry_delay_ms: 1000
      priority: normal
      delivery: work
    metrics_to_guardian:
      queue_name: metrics_to_guardian_queue
      workers: 2
      max_retries: 3
      retry_delay_ms: 1000
      priority: normal
      delivery: work
    patterns_for_aggregator:
      queue_name: patterns_for_aggregator_queue
      workers: 1
      max_retries: 3
      retry_delay_ms: 1000
      priority: normal
      delivery: work
  # workers: the most messages of the queue this service handles at once
  consumers:
    consensus_results:
      queue_name: consensus_results_queue
      workers: 2
      handler: handle_consensus_result
      max_retries: 3
      retry_delay_ms: 1000
      priority: normal
      delivery: addressed
    rollback_triggers:
      queue_name: rollback_triggers_queue
      workers: 1
      handler: handle_rollback_trigger
      max_retries: 3
      retry_delay_ms: 1000
      priority: high
      delivery: addressed
    safety_profiles:
      queue_name: guardian_safety_profiles_queue
      workers: 1
      handler: handle_safety_profile_update
      max_retries: 3
      retry_delay_ms: 1000
      priority: normal
      delivery: broadcast
`, string(out))

	path := filepath.Join(t.TempDir(), "shown.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	back, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	require.Equal(t, cfg, back)
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	cfg := mustDefault(t, CentralCloud)
	cfg.DatabaseURL = "postgres://cc:s3cret@db/central"
	cfg.MessagingURL = "nats://t0ken@nats:4222"
	r := cfg.Redacted()
	require.Equal(t, "postgres://cc:xxxxx@db/central", r.DatabaseURL)
	require.Equal(t, "nats://xxxxx@nats:4222", r.MessagingURL)
	require.Equal(t, cfg.Producers, r.Producers)
	r.Producers[0].Workers = 99
	require.Equal(t, 2, cfg.Producers[0].Workers, "the copy shares nothing with the original")
	require.Equal(t, "nats://t0ken@nats:4222", cfg.BackendURL(), "the original keeps its secrets")

	cfg.MessagingURL = ""
	require.Empty(t, cfg.Redacted().MessagingURL)
}
