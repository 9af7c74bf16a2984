package topology

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// envOf returns a LookupEnv reading only the given name/value pairs.
func envOf(kv map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := kv[name]
		return v, ok
	}
}

// writeConfig writes a configuration file named config.yaml in a fresh
// directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func mustDefault(t *testing.T, service string) ServiceConfig {
	t.Helper()
	cfg, ok := Default(service)
	require.True(t, ok)
	return cfg
}

func intPtr(n int) *int                     { return &n }
func durPtr(d time.Duration) *time.Duration { return &d }

// setWorkers sets the workers of the entry with queue q in cfg.
func setWorkers(t *testing.T, cfg *ServiceConfig, q string, n int) {
	t.Helper()
	for _, e := range cfg.entries() {
		if *e.queue == q {
			*e.workers = n
			return
		}
	}
	t.Fatalf("no entry for queue %s", q)
}

func TestLoadNothingSetIsDefault(t *testing.T) {
	t.Parallel()
	for _, svc := range Services() {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(LoadOptions{Service: svc, LookupEnv: envOf(nil)})
			require.NoError(t, err)
			require.Equal(t, mustDefault(t, svc), cfg)
		})
	}
}

func TestLoadEmptyFileIsDefault(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "# nothing here\n")
	cfg, err := Load(LoadOptions{Service: CentralCloud, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	require.Equal(t, mustDefault(t, CentralCloud), cfg)
}

// TestLoadReadsProcessEnvironment checks that a nil LookupEnv means the
// process environment. Not parallel: it sets environment variables.
func TestLoadReadsProcessEnvironment(t *testing.T) {
	t.Setenv(EnvProposalsWorkers, "9")
	t.Setenv(EnvDatabaseURL, "mem://")
	cfg, err := Load(LoadOptions{Service: CentralCloud})
	require.NoError(t, err)
	require.Equal(t, "mem://", cfg.DatabaseURL)
	c, ok := cfg.Consumer(ProposalsQueue)
	require.True(t, ok)
	require.Equal(t, 9, c.Workers)
}

func TestLoadEmptyEnvironmentVariableIsUnset(t *testing.T) {
	t.Parallel()
	cfg, err := Load(LoadOptions{Service: Singularity, LookupEnv: envOf(map[string]string{
		EnvDatabaseURL: "", EnvProposalsWorkers: "", EnvMaxRetries: "", EnvProfile: "",
	})})
	require.NoError(t, err)
	require.Equal(t, mustDefault(t, Singularity), cfg)
}

// TestLoadEnvTableIsTrue sets each workers variable of the table in turn
// and checks that it changes exactly the entry the table names on the
// service it names.
func TestLoadEnvTableIsTrue(t *testing.T) {
	t.Parallel()
	for _, row := range EnvTable() {
		if row.Setting != SettingWorkers {
			continue
		}
		t.Run(row.Service+"/"+row.Name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(LoadOptions{Service: row.Service, LookupEnv: envOf(map[string]string{row.Name: "7"})})
			require.NoError(t, err)
			want := mustDefault(t, row.Service)
			e, ok := want.entry(row.Side, row.Entry)
			require.True(t, ok)
			require.Equal(t, row.Queue, *e.queue)
			require.Equal(t, row.Default, strconv.Itoa(*e.workers))
			*e.workers = 7
			require.Equal(t, want, cfg)
		})
	}
}

// TestLoadSharedVariableEachSide checks the seed's reuse of a variable on
// both ends of a queue: each service applies it to its own side only.
func TestLoadSharedVariableEachSide(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{EnvProposalsWorkers: "6", EnvRollbackWorkers: "4", EnvConsensusWorkers: "5"})

	sing, err := Load(LoadOptions{Service: Singularity, LookupEnv: env})
	require.NoError(t, err)
	p, _ := sing.Producer(ProposalsQueue)
	require.Equal(t, 6, p.Workers)
	c, _ := sing.Consumer(RollbackQueue)
	require.Equal(t, 4, c.Workers)
	c, _ = sing.Consumer(ConsensusQueue)
	require.Equal(t, 5, c.Workers)

	cc, err := Load(LoadOptions{Service: CentralCloud, LookupEnv: env})
	require.NoError(t, err)
	c, _ = cc.Consumer(ProposalsQueue)
	require.Equal(t, 6, c.Workers)
	p, _ = cc.Producer(RollbackQueue)
	require.Equal(t, 4, p.Workers)
	// CentralCloud reads QUANTUM_FLOW_CONSENSUS_RESULTS_WORKERS, not
	// QUANTUM_FLOW_CONSENSUS_WORKERS, for its consensus_results producer.
	p, _ = cc.Producer(ConsensusQueue)
	require.Equal(t, 2, p.Workers)
}

func TestLoadRetriesApplyToEveryEntry(t *testing.T) {
	t.Parallel()
	cfg, err := Load(LoadOptions{Service: Singularity, LookupEnv: envOf(map[string]string{
		EnvMaxRetries: "0", EnvRetryDelayMS: "250",
	})})
	require.NoError(t, err)
	for _, e := range cfg.entries() {
		require.Equal(t, 0, *e.maxRetries, e.path())
		require.Equal(t, 250*time.Millisecond, *e.retryDelay, e.path())
	}
}

// TestLoadPrecedence checks seed < file < environment < flags, setting by
// setting.
func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
singularity:
  database_url: postgres://file/db
  producers:
    proposals_for_consensus: {workers: 4, max_retries: 1, retry_delay_ms: 100}
    metrics_to_guardian: {workers: 4, max_retries: 1, retry_delay_ms: 100}
    patterns_for_aggregator: {workers: 4, max_retries: 1, retry_delay_ms: 100}
`)
	fileOnly, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	require.Equal(t, "postgres://file/db", fileOnly.DatabaseURL)
	p, _ := fileOnly.Producer(ProposalsQueue)
	require.Equal(t, Producer{Key: "proposals_for_consensus", Queue: ProposalsQueue, Workers: 4, MaxRetries: 1, RetryDelay: 100 * time.Millisecond, Priority: PriorityNormal, Delivery: DeliveryWork}, p)
	c, _ := fileOnly.Consumer(ConsensusQueue)
	require.Equal(t, mustDefault(t, Singularity).Consumers[0], c, "entries the file leaves out keep the seed's values")

	env := envOf(map[string]string{EnvDatabaseURL: "nats://env:4222", EnvProposalsWorkers: "5", EnvMaxRetries: "2", EnvRetryDelayMS: "200"})
	withEnv, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: env})
	require.NoError(t, err)
	require.Equal(t, "nats://env:4222", withEnv.DatabaseURL)
	p, _ = withEnv.Producer(ProposalsQueue)
	require.Equal(t, 5, p.Workers)
	require.Equal(t, 2, p.MaxRetries)
	require.Equal(t, 200*time.Millisecond, p.RetryDelay)
	p, _ = withEnv.Producer(MetricsQueue)
	require.Equal(t, 4, p.Workers, "the file's workers stand where no variable is set")

	withFlags, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: env, Overrides: Overrides{
		DatabaseURL: "mem://", Workers: map[string]int{ProposalsQueue: 8, RollbackQueue: 3},
		MaxRetries: intPtr(7), RetryDelay: durPtr(1500 * time.Millisecond),
	}})
	require.NoError(t, err)
	require.Equal(t, "mem://", withFlags.DatabaseURL)
	p, _ = withFlags.Producer(ProposalsQueue)
	require.Equal(t, Producer{Key: "proposals_for_consensus", Queue: ProposalsQueue, Workers: 8, MaxRetries: 7, RetryDelay: 1500 * time.Millisecond, Priority: PriorityNormal, Delivery: DeliveryWork}, p)
	c, _ = withFlags.Consumer(RollbackQueue)
	require.Equal(t, Consumer{Key: "rollback_triggers", Queue: RollbackQueue, Handler: HandleRollbackTrigger, Workers: 3, MaxRetries: 7, RetryDelay: 1500 * time.Millisecond, Priority: PriorityHigh, Delivery: DeliveryAddressed}, c)
}

// TestLoadProfile checks where a profile sits: at the level that sets it,
// over lower levels' workers, under explicit workers at its level or above.
func TestLoadProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		service   string
		file      string
		env       map[string]string
		overrides Overrides
		// want are the worker counts that differ from the seed, by queue.
		want map[string]int
	}{
		{
			name: "SmallFromEnvSingularity", service: Singularity,
			env:  map[string]string{EnvProfile: ProfileSmall},
			want: map[string]int{ProposalsQueue: 1, MetricsQueue: 1, PatternsQueue: 1, ConsensusQueue: 1, RollbackQueue: 1},
		},
		{
			name: "LargeFromEnvCentralCloud", service: CentralCloud,
			env: map[string]string{EnvProfile: ProfileLarge},
			// consensus_results (CONSENSUS_RESULTS) and safety_profiles
			// (PROFILE_WORKERS) are not in the guidelines' export lines.
			want: map[string]int{ProposalsQueue: 5, MetricsQueue: 4, PatternsQueue: 3, RollbackQueue: 2},
		},
		{
			name: "MediumFromFile", service: Singularity,
			file: "profile: medium\n",
			want: map[string]int{ProposalsQueue: 3, PatternsQueue: 2},
		},
		{
			name: "FileWorkersBeatFileProfile", service: Singularity,
			file: "profile: large\nsingularity:\n  producers:\n    proposals_for_consensus: {workers: 9}\n",
			want: map[string]int{ProposalsQueue: 9, MetricsQueue: 4, PatternsQueue: 3, ConsensusQueue: 4, RollbackQueue: 2},
		},
		{
			name: "EnvWorkersBeatFileProfile", service: Singularity,
			file: "profile: large\n",
			env:  map[string]string{EnvProposalsWorkers: "9"},
			want: map[string]int{ProposalsQueue: 9, MetricsQueue: 4, PatternsQueue: 3, ConsensusQueue: 4, RollbackQueue: 2},
		},
		{
			name: "EnvProfileBeatsFileWorkers", service: Singularity,
			file: "singularity:\n  producers:\n    proposals_for_consensus: {workers: 9}\n    metrics_to_guardian: {workers: 9}\n  consumers:\n    safety_profiles: {workers: 9}\n",
			env:  map[string]string{EnvProfile: ProfileSmall},
			// safety_profiles is not in the guidelines: the file's 9 stands.
			want: map[string]int{ProposalsQueue: 1, MetricsQueue: 1, PatternsQueue: 1, ConsensusQueue: 1, RollbackQueue: 1, SafetyProfilesQueue: 9},
		},
		{
			name: "EnvWorkersBeatEnvProfile", service: CentralCloud,
			env:  map[string]string{EnvProfile: ProfileSmall, EnvProposalsWorkers: "8"},
			want: map[string]int{ProposalsQueue: 8, MetricsQueue: 1},
		},
		{
			name: "EnvProfileBeatsFileProfile", service: Singularity,
			file: "profile: large\n",
			env:  map[string]string{EnvProfile: ProfileSmall},
			want: map[string]int{ProposalsQueue: 1, MetricsQueue: 1, ConsensusQueue: 1},
		},
		{
			name: "FlagProfileBeatsEnvWorkers", service: Singularity,
			env:       map[string]string{EnvProposalsWorkers: "8", EnvProfile: ProfileSmall},
			overrides: Overrides{Profile: ProfileLarge},
			want:      map[string]int{ProposalsQueue: 5, MetricsQueue: 4, PatternsQueue: 3, ConsensusQueue: 4, RollbackQueue: 2},
		},
		{
			name: "FlagWorkersBeatFlagProfile", service: Singularity,
			overrides: Overrides{Profile: ProfileLarge, Workers: map[string]int{ProposalsQueue: 1}},
			want:      map[string]int{ProposalsQueue: 1, MetricsQueue: 4, PatternsQueue: 3, ConsensusQueue: 4, RollbackQueue: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: tt.service, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			want := mustDefault(t, tt.service)
			for q, n := range tt.want {
				setWorkers(t, &want, q, n)
			}
			require.Equal(t, want, cfg)
		})
	}
}

func TestProfileWorkersMatchGuidelines(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"small", "medium", "large"}, ProfileNames())
	medium, ok := ProfileEnv(ProfileMedium)
	require.True(t, ok)
	require.Equal(t, map[string]int{
		"QUANTUM_FLOW_PROPOSALS_WORKERS": 3, "QUANTUM_FLOW_METRICS_WORKERS": 2, "QUANTUM_FLOW_PATTERNS_WORKERS": 2,
		"QUANTUM_FLOW_CONSENSUS_WORKERS": 2, "QUANTUM_FLOW_ROLLBACK_WORKERS": 1,
	}, medium)
	large, ok := ProfileWorkers(Singularity, ProfileLarge)
	require.True(t, ok)
	require.Equal(t, map[string]int{ProposalsQueue: 5, MetricsQueue: 4, PatternsQueue: 3, ConsensusQueue: 4, RollbackQueue: 2}, large)
	_, ok = ProfileWorkers(Singularity, "huge")
	require.False(t, ok)
	_, ok = ProfileWorkers("guardian", ProfileSmall)
	require.False(t, ok)
}

// TestLoadInvalid lists every way a configuration can be wrong, with the
// exact error each gives. A file's path appears as config.yaml.
func TestLoadInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		service   string // Singularity when empty
		file      string // no file when empty
		env       map[string]string
		overrides Overrides
		want      string
	}{
		// Service.
		{name: "UnknownService", service: "guardian",
			want: `invalid configuration: service "guardian": unknown service (known: singularity, centralcloud)`},

		// Environment.
		{name: "EnvWorkersNotInteger", env: map[string]string{EnvProposalsWorkers: "abc"},
			want: `invalid singularity configuration: QUANTUM_FLOW_PROPOSALS_WORKERS="abc": not an integer`},
		{name: "EnvWorkersFraction", env: map[string]string{EnvMetricsWorkers: "2.5"},
			want: `invalid singularity configuration: QUANTUM_FLOW_METRICS_WORKERS="2.5": not an integer`},
		{name: "EnvWorkersZero", env: map[string]string{EnvRollbackWorkers: "0"},
			want: `invalid singularity configuration: QUANTUM_FLOW_ROLLBACK_WORKERS="0": must be at least 1`},
		{name: "EnvWorkersNegative", service: CentralCloud, env: map[string]string{EnvProfileWorkers: "-2"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_PROFILE_WORKERS="-2": must be at least 1`},
		{name: "EnvWorkersOutOfRange", env: map[string]string{EnvSafetyWorkers: "99999999999999999999"},
			want: `invalid singularity configuration: QUANTUM_FLOW_SAFETY_WORKERS="99999999999999999999": must be at most 1024`},
		{name: "EnvWorkersNegativeOutOfRange", env: map[string]string{EnvSafetyWorkers: "-99999999999999999999"},
			want: `invalid singularity configuration: QUANTUM_FLOW_SAFETY_WORKERS="-99999999999999999999": must be at least 1`},
		{name: "EnvMaxRetriesNegative", env: map[string]string{EnvMaxRetries: "-1"},
			want: `invalid singularity configuration: QUANTUM_FLOW_MAX_RETRIES="-1": must not be negative`},
		{name: "EnvMaxRetriesNotInteger", env: map[string]string{EnvMaxRetries: "three"},
			want: `invalid singularity configuration: QUANTUM_FLOW_MAX_RETRIES="three": not an integer`},
		{name: "EnvRetryDelayNegative", env: map[string]string{EnvRetryDelayMS: "-1000"},
			want: `invalid singularity configuration: QUANTUM_FLOW_RETRY_DELAY_MS="-1000": must not be negative`},
		{name: "EnvRetryDelayWithUnit", env: map[string]string{EnvRetryDelayMS: "1s"},
			want: `invalid singularity configuration: QUANTUM_FLOW_RETRY_DELAY_MS="1s": not an integer`},
		{name: "EnvRetryDelayOutOfRange", env: map[string]string{EnvRetryDelayMS: "9223372036854775"},
			want: `invalid singularity configuration: QUANTUM_FLOW_RETRY_DELAY_MS="9223372036854775": must be at most 3600000`},
		{name: "EnvDatabaseURLUnknownScheme", env: map[string]string{EnvDatabaseURL: "mysql://app:s3cret@localhost/db"},
			want: `invalid singularity configuration: QUANTUM_FLOW_DATABASE_URL="mysql://app:xxxxx@localhost/db": unknown scheme "mysql" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "EnvDatabaseURLNoScheme", env: map[string]string{EnvDatabaseURL: "localhost/singularity"},
			want: `invalid singularity configuration: QUANTUM_FLOW_DATABASE_URL="localhost/singularity": no scheme (known: mem, nats, postgres, postgresql, tls)`},
		{name: "EnvDatabaseURLUnparseable", env: map[string]string{EnvDatabaseURL: "postgres://app:s3cret@localhost:port/db"},
			want: `invalid singularity configuration: QUANTUM_FLOW_DATABASE_URL: not a valid URL (not shown, as it may hold a password)`},
		{name: "EnvDatabaseURLSpaceInUser", env: map[string]string{EnvDatabaseURL: "postgres://us er:S3CRET@127.0.0.1/db"},
			want: `invalid singularity configuration: QUANTUM_FLOW_DATABASE_URL: not a valid URL (not shown, as it may hold a password)`},
		{name: "EnvDatabaseURLSemicolonInQuery", env: map[string]string{EnvDatabaseURL: "postgres://app@localhost/db?password=s3cret;x"},
			want: `invalid singularity configuration: QUANTUM_FLOW_DATABASE_URL: not a valid URL: a query parameter does not parse (a ';' or a bad %-escape; not shown, as it may hold a password)`},
		{name: "EnvMessagingURLUnknownScheme", service: CentralCloud, env: map[string]string{EnvMessagingURL: "amqp://guest:s3cret@rabbit/"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_MESSAGING_URL="amqp://guest:xxxxx@rabbit/": unknown scheme "amqp" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "EnvMessagingURLUnparseable", env: map[string]string{EnvMessagingURL: "nats://S3CRET@[::1"},
			want: `invalid singularity configuration: QUANTUM_FLOW_MESSAGING_URL: not a valid URL (not shown, as it may hold a password)`},
		{name: "EnvInstanceIDSpace", env: map[string]string{EnvInstanceID: "web 1"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_ID="web 1": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "EnvInstanceIDAll", service: CentralCloud, env: map[string]string{EnvInstanceID: "all"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_INSTANCE_ID="all": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "EnvInstanceIDSeparator", env: map[string]string{EnvInstanceID: "node@2"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_ID="node@2": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "EnvInstanceID65", env: map[string]string{EnvInstanceID: strings.Repeat("a", 65)},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_ID="` + strings.Repeat("a", 65) + `": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "EnvInstanceIDHuge", env: map[string]string{EnvInstanceID: strings.Repeat("x", 1<<20)},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_ID="` + strings.Repeat("x", 80) + `"... (1048576 bytes): not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "EnvWorkersAboveMax", env: map[string]string{EnvProposalsWorkers: "99999999999"},
			want: `invalid singularity configuration: QUANTUM_FLOW_PROPOSALS_WORKERS="99999999999": must be at most 1024`},
		{name: "EnvWorkersJustAboveMax", service: CentralCloud, env: map[string]string{EnvProposalsWorkers: "1025"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_PROPOSALS_WORKERS="1025": must be at most 1024`},
		{name: "EnvMaxRetriesAboveMax", env: map[string]string{EnvMaxRetries: "1001"},
			want: `invalid singularity configuration: QUANTUM_FLOW_MAX_RETRIES="1001": must be at most 1000`},
		{name: "EnvMaxRetriesOutOfRange", env: map[string]string{EnvMaxRetries: "9223372036854775808"},
			want: `invalid singularity configuration: QUANTUM_FLOW_MAX_RETRIES="9223372036854775808": must be at most 1000`},
		{name: "EnvRetryDelayAboveMax", env: map[string]string{EnvRetryDelayMS: "3600001"},
			want: `invalid singularity configuration: QUANTUM_FLOW_RETRY_DELAY_MS="3600001": must be at most 3600000`},
		{name: "EnvInstanceTTLNoUnit", env: map[string]string{EnvInstanceTTL: "24"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_TTL="24": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)`},
		{name: "EnvInstanceTTLDays", env: map[string]string{EnvInstanceTTL: "1d"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_TTL="1d": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)`},
		{name: "EnvInstanceTTLZero", env: map[string]string{EnvInstanceTTL: "0s"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_TTL="0s": must be at least 1ms`},
		{name: "EnvInstanceTTLNegative", service: CentralCloud, env: map[string]string{EnvInstanceTTL: "-1h"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_INSTANCE_TTL="-1h": must not be negative`},
		{name: "EnvInstanceTTLAboveMax", env: map[string]string{EnvInstanceTTL: "721h"},
			want: `invalid singularity configuration: QUANTUM_FLOW_INSTANCE_TTL="721h": must be at most 720h`},
		{name: "EnvBroadcastRetentionBelowMin", env: map[string]string{EnvBroadcastRetention: "999us"},
			want: `invalid singularity configuration: QUANTUM_FLOW_BROADCAST_RETENTION="999us": must be at least 1ms`},
		{name: "EnvBroadcastRetentionAboveMax", service: CentralCloud, env: map[string]string{EnvBroadcastRetention: "2160h1s"},
			want: `invalid centralcloud configuration: QUANTUM_FLOW_BROADCAST_RETENTION="2160h1s": must be at most 2160h`},
		{name: "EnvBroadcastRetentionNotADuration", env: map[string]string{EnvBroadcastRetention: "a week"},
			want: `invalid singularity configuration: QUANTUM_FLOW_BROADCAST_RETENTION="a week": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)`},
		{name: "EnvProfileUnknown", env: map[string]string{EnvProfile: "huge"},
			want: `invalid singularity configuration: QUANTUM_FLOW_PROFILE="huge": unknown profile (known: small, medium, large)`},

		// Flags.
		{name: "FlagWorkersZero", overrides: Overrides{Workers: map[string]int{ConsensusQueue: 0}},
			want: `invalid singularity configuration: --workers="consensus_results_queue=0": must be at least 1`},
		{name: "FlagWorkersUnknownQueue", overrides: Overrides{Workers: map[string]int{"proposals": 2}},
			want: `invalid singularity configuration: --workers="proposals=2": unknown queue (known: proposals_for_consensus_queue, consensus_results_queue, metrics_to_guardian_queue, patterns_for_aggregator_queue, rollback_triggers_queue, guardian_safety_profiles_queue)`},
		{name: "FlagMaxRetriesNegative", overrides: Overrides{MaxRetries: intPtr(-3)},
			want: `invalid singularity configuration: --max-retries=-3: must not be negative`},
		{name: "FlagRetryDelayNegative", overrides: Overrides{RetryDelay: durPtr(-time.Second)},
			want: `invalid singularity configuration: --retry-delay=-1s: must not be negative`},
		{name: "FlagURLUnknownScheme", overrides: Overrides{MessagingURL: "redis://:hunter2@cache:6379"},
			want: `invalid singularity configuration: --url="redis://:xxxxx@cache:6379": unknown scheme "redis" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "FlagURLUnparseable", overrides: Overrides{MessagingURL: "postgres:hunter2@host/db"},
			want: `invalid singularity configuration: --url: not a valid URL: no "//" after the scheme (not shown, as it may hold a password)`},
		{name: "FlagDatabaseURLUnknownScheme", overrides: Overrides{DatabaseURL: "redis://:hunter2@cache:6379"},
			want: `invalid singularity configuration: --database-url="redis://:xxxxx@cache:6379": unknown scheme "redis" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "FlagInstanceInvalid", overrides: Overrides{InstanceID: "singularity/2"},
			want: `invalid singularity configuration: --instance="singularity/2": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "FlagWorkersAboveMax", overrides: Overrides{Workers: map[string]int{ProposalsQueue: 100000000}},
			want: `invalid singularity configuration: --workers="proposals_for_consensus_queue=100000000": must be at most 1024`},
		{name: "FlagMaxRetriesAboveMax", overrides: Overrides{MaxRetries: intPtr(5000)},
			want: `invalid singularity configuration: --max-retries=5000: must be at most 1000`},
		{name: "FlagRetryDelayAboveMax", overrides: Overrides{RetryDelay: durPtr(2 * time.Hour)},
			want: `invalid singularity configuration: --retry-delay=2h0m0s: must be at most 1h0m0s`},
		{name: "FlagInstanceTTLZero", overrides: Overrides{InstanceTTL: durPtr(0)},
			want: `invalid singularity configuration: --instance-ttl=0s: must be at least 1ms`},
		{name: "FlagInstanceTTLAboveMax", overrides: Overrides{InstanceTTL: durPtr(31 * 24 * time.Hour)},
			want: `invalid singularity configuration: --instance-ttl=744h: must be at most 720h`},
		{name: "FlagBroadcastRetentionNegative", overrides: Overrides{BroadcastRetention: durPtr(-time.Minute)},
			want: `invalid singularity configuration: --broadcast-retention=-1m: must not be negative`},
		{name: "FlagProfileUnknown", overrides: Overrides{Profile: "Medium"},
			want: `invalid singularity configuration: --profile="Medium": unknown profile (known: small, medium, large)`},

		// File: values.
		{name: "FileWorkersNotInteger", file: "singularity:\n  producers:\n    proposals_for_consensus:\n      workers: abc\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.proposals_for_consensus.workers="abc": not an integer`},
		{name: "FileWorkersZero", file: "singularity:\n  consumers:\n    rollback_triggers: {workers: 0}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.consumers.rollback_triggers.workers="0": must be at least 1`},
		{name: "FileWorkersNoValue", file: "singularity:\n  consumers:\n    rollback_triggers:\n      workers:\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.rollback_triggers.workers: no value`},
		{name: "FileWorkersList", file: "singularity:\n  consumers:\n    rollback_triggers:\n      workers: [1, 2]\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.rollback_triggers.workers: expected a single value, got a list`},
		{name: "FileMaxRetriesNegative", file: "singularity:\n  consumers:\n    consensus_results:\n      max_retries: -1\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.consensus_results.max_retries="-1": must not be negative`},
		{name: "FileRetryDelayNegative", file: "singularity:\n  consumers:\n    consensus_results:\n      retry_delay_ms: -5\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.consensus_results.retry_delay_ms="-5": must not be negative`},
		{name: "FileUnknownQueue", file: "singularity:\n  producers:\n    proposals_for_consensus:\n      queue_name: proposals_queue\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.proposals_for_consensus.queue_name="proposals_queue": unknown queue (known: proposals_for_consensus_queue, consensus_results_queue, metrics_to_guardian_queue, patterns_for_aggregator_queue, rollback_triggers_queue, guardian_safety_profiles_queue)`},
		{name: "FileDuplicateQueue", file: "singularity:\n  producers:\n    patterns_for_aggregator:\n      queue_name: metrics_to_guardian_queue\n",
			want: `invalid singularity configuration: singularity.producers.metrics_to_guardian.queue_name and singularity.producers.patterns_for_aggregator.queue_name are both "metrics_to_guardian_queue": duplicate queue`},
		{name: "FileQueueOfOtherSide", file: "singularity:\n  producers:\n    proposals_for_consensus:\n      queue_name: consensus_results_queue\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.proposals_for_consensus.queue_name="consensus_results_queue": not a queue singularity publishes to (it publishes to: proposals_for_consensus_queue, metrics_to_guardian_queue, patterns_for_aggregator_queue)`},
		{name: "FileQueueOfOtherSideCentralCloud", service: CentralCloud, file: "centralcloud:\n  consumers:\n    proposals: {queue_name: rollback_triggers_queue}\n",
			want: `invalid centralcloud configuration: config.yaml:3: centralcloud.consumers.proposals.queue_name="rollback_triggers_queue": not a queue centralcloud consumes (it consumes: proposals_for_consensus_queue, metrics_to_guardian_queue, patterns_for_aggregator_queue)`},
		{name: "FileUnknownPriority", file: "singularity:\n  consumers:\n    rollback_triggers: {priority: urgent}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.consumers.rollback_triggers.priority="urgent": unknown priority (known: normal, high)`},
		{name: "FileEmptyHandler", file: "singularity:\n  consumers:\n    rollback_triggers: {handler: \"\"}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.consumers.rollback_triggers.handler="": must not be empty`},
		{name: "FileDatabaseURLUnknownScheme", file: "singularity:\n  database_url: mysql://root:topsecret@db/app\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.database_url="mysql://root:xxxxx@db/app": unknown scheme "mysql" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "FileWorkersAboveMax", file: "singularity:\n  producers:\n    proposals_for_consensus: {workers: 99999999999}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.producers.proposals_for_consensus.workers="99999999999": must be at most 1024`},
		{name: "FileMaxRetriesAboveMax", file: "singularity:\n  consumers:\n    consensus_results: {max_retries: 1001}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.consumers.consensus_results.max_retries="1001": must be at most 1000`},
		{name: "FileRetryDelayAboveMax", file: "singularity:\n  consumers:\n    consensus_results: {retry_delay_ms: 86400000}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.consumers.consensus_results.retry_delay_ms="86400000": must be at most 3600000`},
		{name: "FileDeliveryUnknown", file: "singularity:\n  consumers:\n    safety_profiles:\n      delivery: fanout\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.safety_profiles.delivery="fanout": unknown delivery (known: work, addressed, broadcast)`},
		{name: "FileDeliveryUnknownProducer", service: CentralCloud, file: "centralcloud:\n  producers:\n    safety_profiles: {delivery: Broadcast}\n",
			want: `invalid centralcloud configuration: config.yaml:3: centralcloud.producers.safety_profiles.delivery="Broadcast": unknown delivery (known: work, addressed, broadcast)`},
		{name: "FileDeliveryNoValue", file: "singularity:\n  producers:\n    proposals_for_consensus:\n      delivery:\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.proposals_for_consensus.delivery: no value`},
		{name: "FileDeliveryPairDisagrees", service: CentralCloud,
			file: "singularity:\n  consumers:\n    rollback_triggers: {delivery: work}\ncentralcloud:\n  instance_id: central\n",
			want: `invalid centralcloud configuration: rollback_triggers_queue: centralcloud.producers.rollback_triggers.delivery="addressed" (seed default) and singularity.consumers.rollback_triggers.delivery="work" (config.yaml:3) differ: the producer and the consumer of a queue must agree on its delivery`},
		{name: "FileDeliveryPairDisagreesBothSet",
			file: "singularity:\n  producers:\n    metrics_to_guardian: {delivery: work}\ncentralcloud:\n  consumers:\n    metrics: {delivery: broadcast}\n",
			want: `invalid singularity configuration: metrics_to_guardian_queue: singularity.producers.metrics_to_guardian.delivery="work" (config.yaml:3) and centralcloud.consumers.metrics.delivery="broadcast" (config.yaml:6) differ: the producer and the consumer of a queue must agree on its delivery`},
		{name: "FileHandlerMethodEmpty", file: "singularity:\n  consumers:\n    consensus_results:\n      handler: Singularity.Consumers\n      handler_method: \"\"\n",
			want: `invalid singularity configuration: config.yaml:5: singularity.consumers.consensus_results.handler_method="": must not be empty`},
		{name: "FileHandlerMethodList", file: "singularity:\n  consumers:\n    consensus_results:\n      handler_method: [a, b]\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.consensus_results.handler_method: expected a single value, got a list`},
		{name: "FileHandlerModuleMapping", file: "singularity:\n  consumers:\n    consensus_results:\n      handler: {module: X}\n      handler_method: handle_consensus_result\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.consumers.consensus_results.handler: expected a single value, got a mapping`},
		{name: "FileInstanceIDInvalid", file: "singularity:\n  instance_id: \"eu west\"\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.instance_id="eu west": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "FileInstanceIDEmpty", file: "singularity:\n  instance_id: \"\"\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.instance_id="": must not be empty`},
		{name: "FileInstanceIDOtherServiceChecked", file: "centralcloud:\n  instance_id: all\n",
			want: `invalid singularity configuration: config.yaml:2: centralcloud.instance_id="all": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`},
		{name: "FileMessagingURLUnknownScheme", file: "singularity:\n  messaging_url: kafka://u:topsecret@broker:9092\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.messaging_url="kafka://u:xxxxx@broker:9092": unknown scheme "kafka" (known: mem, nats, postgres, postgresql, tls)`},
		{name: "FileMessagingURLUnparseable", file: "singularity:\n  messaging_url: \"postgres://u:top/secret@db/app\"\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.messaging_url: not a valid URL (not shown, as it may hold a password)`},
		{name: "FileDatabaseURLEmpty", file: "singularity:\n  database_url: \"\"\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.database_url="": must not be empty`},
		{name: "FileInstanceTTLNumber", file: "singularity:\n  instance_ttl: 86400\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.instance_ttl="86400": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)`},
		{name: "FileInstanceTTLAboveMax", file: "singularity:\n  instance_ttl: 1000h\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.instance_ttl="1000h": must be at most 720h`},
		{name: "FileInstanceTTLNoValue", file: "singularity:\n  instance_ttl:\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.instance_ttl: no value`},
		{name: "FileBroadcastRetentionZero", service: CentralCloud, file: "centralcloud:\n  broadcast_retention: 0s\n",
			want: `invalid centralcloud configuration: config.yaml:2: centralcloud.broadcast_retention="0s": must be at least 1ms`},
		{name: "FileBroadcastRetentionOtherServiceChecked", file: "centralcloud:\n  broadcast_retention: 7d\n",
			want: `invalid singularity configuration: config.yaml:2: centralcloud.broadcast_retention="7d": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)`},
		{name: "FileBroadcastRetentionList", file: "singularity:\n  broadcast_retention: [168h]\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.broadcast_retention: expected a single value, got a list`},
		{name: "FileProfileUnknown", file: "profile: tiny\n",
			want: `invalid singularity configuration: config.yaml:1: profile="tiny": unknown profile (known: small, medium, large)`},

		// File: keys and shape.
		{name: "FileUnknownTopLevelKey", file: "profile: small\nguardian:\n  workers: 2\n",
			want: `invalid singularity configuration: config.yaml:2: guardian: unknown key in the top level (known: profile, singularity, centralcloud)`},
		{name: "FileUnknownServiceKey", file: "singularity:\n  databse_url: mem://\n",
			want: `invalid singularity configuration: config.yaml:2: singularity.databse_url: unknown key in a service section (known: database_url, messaging_url, instance_id, instance_ttl, broadcast_retention, producers, consumers)`},
		{name: "FileUnknownEntryKey", file: "singularity:\n  producers:\n    proposals_for_consensus:\n      wrkers: 2\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.proposals_for_consensus.wrkers: unknown key in a producer entry (known: queue_name, workers, max_retries, retry_delay_ms, priority, delivery, message_ttl, dedup_window)`},
		{name: "FileHandlerOnProducer", file: "centralcloud:\n  producers:\n    rollback_triggers:\n      handler: handle_rollback_trigger\n",
			want: `invalid singularity configuration: config.yaml:4: centralcloud.producers.rollback_triggers.handler: unknown key in a producer entry (known: queue_name, workers, max_retries, retry_delay_ms, priority, delivery, message_ttl, dedup_window)`},
		{name: "FileHandlerMethodOnProducer", file: "singularity:\n  producers:\n    metrics_to_guardian:\n      handler_method: handle_execution_metrics\n",
			want: `invalid singularity configuration: config.yaml:4: singularity.producers.metrics_to_guardian.handler_method: unknown key in a producer entry (known: queue_name, workers, max_retries, retry_delay_ms, priority, delivery, message_ttl, dedup_window)`},
		{name: "FileUnknownTopLevelKeyHoldingAnAnchor", file: "base: &b {wrkers: 2}\n",
			want: `invalid singularity configuration: config.yaml:1: base: unknown key in the top level (known: profile, singularity, centralcloud)`},
		{name: "FileUnknownKeyThroughMerge", file: "singularity:\n  consumers:\n    patterns: &p {workrs: 2}\n    consensus_results:\n      <<: *p\n",
			want: "invalid singularity configuration:\n" +
				`  config.yaml:3: singularity.consumers.patterns.workrs: unknown key in a consumer entry (known: queue_name, workers, handler, handler_method, max_retries, retry_delay_ms, priority, delivery, dedup_window)` + "\n" +
				`  config.yaml:3: singularity.consumers.consensus_results.workrs: unknown key in a consumer entry (known: queue_name, workers, handler, handler_method, max_retries, retry_delay_ms, priority, delivery, dedup_window)`},
		{name: "FileUnknownProducer", file: "singularity:\n  producers:\n    proposals: {workers: 2}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.producers.proposals: unknown producer of singularity (known: proposals_for_consensus, metrics_to_guardian, patterns_for_aggregator)`},
		{name: "FileConsumerUnderProducers", file: "singularity:\n  producers:\n    consensus_results: {workers: 2}\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.producers.consensus_results: unknown producer of singularity (known: proposals_for_consensus, metrics_to_guardian, patterns_for_aggregator)`},
		{name: "FileOtherServiceChecked", file: "centralcloud:\n  consumers:\n    proposals: {workers: 0}\n",
			want: `invalid singularity configuration: config.yaml:3: centralcloud.consumers.proposals.workers="0": must be at least 1`},
		{name: "FileEntriesAsList", file: "singularity:\n  producers:\n    - proposals_for_consensus\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.producers: expected the producer entries, got a list`},
		{name: "FileEntryAsNumber", file: "singularity:\n  consumers:\n    rollback_triggers: 2\n",
			want: "invalid singularity configuration: config.yaml:3: singularity.consumers.rollback_triggers: expected a consumer entry (queue_name, workers, handler, handler_method, max_retries, retry_delay_ms, priority, delivery, dedup_window), got \"2\""},
		{name: "FileServiceAsList", file: "centralcloud:\n  - proposals\n",
			want: `invalid singularity configuration: config.yaml:2: centralcloud: expected a service section (database_url, messaging_url, instance_id, instance_ttl, broadcast_retention, producers, consumers), got a list`},
		{name: "FileTopLevelScalar", file: "just text\n",
			want: `invalid singularity configuration: config.yaml:1: expected the top level (profile, singularity, centralcloud), got "just text"`},
		{name: "FileNotYAML", file: "singularity:\n  database_url: mem://\n    producers: {}\n",
			want: `invalid singularity configuration: config.yaml:3: mapping values are not allowed in this context`},
		{name: "FileDuplicateKey", file: "singularity:\n  database_url: mem://\n  database_url: mem://\n",
			want: `invalid singularity configuration: config.yaml:3: singularity.database_url: duplicate key (first at line 2)`},
		{name: "FileTwoDocuments", file: "profile: small\n---\nprofile: large\n",
			want: `invalid singularity configuration: config.yaml: more than one YAML document`},

		// Several at once, in order file, environment, flags.
		{name: "ManyProblems",
			file:      "singularity:\n  consumers:\n    rollback_triggers: {workers: -1}\n",
			env:       map[string]string{EnvProposalsWorkers: "x", EnvRetryDelayMS: "-1"},
			overrides: Overrides{MaxRetries: intPtr(-1)},
			want: "invalid singularity configuration:\n" +
				`  config.yaml:3: singularity.consumers.rollback_triggers.workers="-1": must be at least 1` + "\n" +
				`  QUANTUM_FLOW_PROPOSALS_WORKERS="x": not an integer` + "\n" +
				`  QUANTUM_FLOW_RETRY_DELAY_MS="-1": must not be negative` + "\n" +
				`  --max-retries=-1: must not be negative`},
		{name: "ManyWaitProblems",
			file:      "singularity:\n  instance_ttl: 1y\n",
			env:       map[string]string{EnvBroadcastRetention: "100d"},
			overrides: Overrides{InstanceTTL: durPtr(time.Microsecond)},
			want: "invalid singularity configuration:\n" +
				`  config.yaml:2: singularity.instance_ttl="1y": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)` + "\n" +
				`  QUANTUM_FLOW_BROADCAST_RETENTION="100d": not a duration (a number with a unit: 24h, 90m, 30s, 500ms)` + "\n" +
				`  --instance-ttl=1µs: must be at least 1ms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: tt.service, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if opts.Service == "" {
				opts.Service = Singularity
			}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidConfig)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce))
			require.Zero(t, cfg)
			msg := err.Error()
			if opts.Path != "" {
				msg = strings.ReplaceAll(msg, opts.Path, "config.yaml")
			}
			require.Equal(t, tt.want, msg)
			for _, secret := range []string{"s3cret", "S3CRET", "hunter2", "topsecret", "top/secret"} {
				require.NotContains(t, msg, secret)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Equal(t, "invalid singularity configuration: config file: open "+path+": no such file or directory", err.Error())
}

func TestValidateHandlers(t *testing.T) {
	t.Parallel()
	cfg := mustDefault(t, Singularity)
	require.NoError(t, ValidateHandlers(cfg, []string{HandleConsensusResult, HandleRollbackTrigger, HandleSafetyProfileUpdate}))
	require.NoError(t, ValidateHandlers(mustDefault(t, CentralCloud), []string{
		HandleProposalForConsensus, HandleExecutionMetrics, HandlePatternDiscovered, "extra_handler",
	}))

	tests := []struct {
		name       string
		registered []string
		want       string
	}{
		{name: "OneMissing", registered: []string{HandleSafetyProfileUpdate, HandleConsensusResult},
			want: `invalid singularity configuration: singularity.consumers.rollback_triggers (queue rollback_triggers_queue): handler "handle_rollback_trigger" is not registered (registered: handle_consensus_result, handle_safety_profile_update)`},
		{name: "NoneRegistered", registered: nil,
			want: "invalid singularity configuration:\n" +
				`  singularity.consumers.consensus_results (queue consensus_results_queue): handler "handle_consensus_result" is not registered (none registered)` + "\n" +
				`  singularity.consumers.rollback_triggers (queue rollback_triggers_queue): handler "handle_rollback_trigger" is not registered (none registered)` + "\n" +
				`  singularity.consumers.safety_profiles (queue guardian_safety_profiles_queue): handler "handle_safety_profile_update" is not registered (none registered)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateHandlers(cfg, tt.registered)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestLoadRenamedHandlerMustBeRegistered(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "singularity:\n  consumers:\n    consensus_results: {handler: on_consensus}\n")
	cfg, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
	require.NoError(t, err)
	c, _ := cfg.Consumer(ConsensusQueue)
	require.Equal(t, "on_consensus", c.Handler)
	err = ValidateHandlers(cfg, []string{HandleConsensusResult, HandleRollbackTrigger, HandleSafetyProfileUpdate})
	require.EqualError(t, err, `invalid singularity configuration: singularity.consumers.consensus_results (queue consensus_results_queue): handler "on_consensus" is not registered (registered: handle_consensus_result, handle_rollback_trigger, handle_safety_profile_update)`)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, svc := range Services() {
		require.NoError(t, mustDefault(t, svc).Validate())
	}
	bad := mustDefault(t, Singularity)
	bad.DatabaseURL = "ftp://user:pw123@host/x"
	bad.MessagingURL = "nats://tok:pw456@[::1"
	bad.InstanceID = "a b"
	bad.InstanceTTL = -time.Hour
	bad.BroadcastRetention = BroadcastRetentionLimit + time.Hour
	bad.Producers[0].Workers = 0
	bad.Producers[1].MaxRetries = -1
	bad.Producers[2].RetryDelay = -time.Second
	bad.Producers[2].Delivery = "fanout"
	bad.Consumers[0].Priority = "low"
	bad.Consumers[0].Workers = MaxWorkers + 1
	bad.Consumers[1].Handler = ""
	bad.Consumers[1].MaxRetries = MaxRetriesLimit + 1
	bad.Consumers[1].RetryDelay = RetryDelayLimit + time.Millisecond
	bad.Consumers[2].Queue = "nope"
	bad.Consumers[2].Delivery = ""
	err := bad.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, "invalid singularity configuration:\n"+
		`  singularity.database_url="ftp://user:xxxxx@host/x": unknown scheme "ftp" (known: mem, nats, postgres, postgresql, tls)`+"\n"+
		`  singularity.messaging_url: not a valid URL (not shown, as it may hold a password)`+"\n"+
		`  singularity.instance_id="a b": not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not "all")`+"\n"+
		`  singularity.instance_ttl=-1h: must not be negative`+"\n"+
		`  singularity.broadcast_retention=2161h: must be at most 2160h`+"\n"+
		`  singularity.producers.proposals_for_consensus.workers=0: must be at least 1`+"\n"+
		`  singularity.producers.metrics_to_guardian.max_retries=-1: must not be negative`+"\n"+
		`  singularity.producers.patterns_for_aggregator.retry_delay_ms=-1000: must not be negative`+"\n"+
		`  singularity.producers.patterns_for_aggregator.delivery="fanout": unknown delivery (known: work, addressed, broadcast)`+"\n"+
		`  singularity.consumers.consensus_results.workers=1025: must be at most 1024`+"\n"+
		`  singularity.consumers.consensus_results.priority="low": unknown priority (known: normal, high)`+"\n"+
		`  singularity.consumers.rollback_triggers.max_retries=1001: must be at most 1000`+"\n"+
		`  singularity.consumers.rollback_triggers.retry_delay_ms=3600001: must be at most 3600000`+"\n"+
		`  singularity.consumers.rollback_triggers.handler="": must not be empty`+"\n"+
		`  singularity.consumers.safety_profiles.queue_name="nope": unknown queue (known: proposals_for_consensus_queue, consensus_results_queue, metrics_to_guardian_queue, patterns_for_aggregator_queue, rollback_triggers_queue, guardian_safety_profiles_queue)`+"\n"+
		`  singularity.consumers.safety_profiles.delivery="": unknown delivery (known: work, addressed, broadcast)`)
	for _, secret := range []string{"pw123", "pw456", "tok"} {
		require.NotContains(t, err.Error(), secret)
	}

	// Zero is the default, for a configuration built by hand.
	hand := mustDefault(t, CentralCloud)
	hand.InstanceTTL, hand.BroadcastRetention = 0, 0
	require.NoError(t, hand.Validate())

	err = ServiceConfig{Name: "guardian", DatabaseURL: "mem://", InstanceID: "g1"}.Validate()
	require.EqualError(t, err, `invalid configuration: name="guardian": unknown service (known: singularity, centralcloud)`)
}

// TestLoadInstanceID checks instance_id at every level: the host name by
// default, then the file, the environment, the --instance flag.
func TestLoadInstanceID(t *testing.T) {
	t.Parallel()
	file := "singularity:\n  instance_id: from-file\ncentralcloud:\n  instance_id: central.1\n"
	tests := []struct {
		name      string
		service   string
		file      string
		env       map[string]string
		overrides Overrides
		want      string
	}{
		{name: "Default", service: Singularity, want: DefaultInstanceID()},
		{name: "File", service: Singularity, file: file, want: "from-file"},
		{name: "FileOtherSection", service: CentralCloud, file: file, want: "central.1"},
		{name: "EnvOverFile", service: Singularity, file: file, env: map[string]string{EnvInstanceID: "from_env"}, want: "from_env"},
		{name: "EnvBothServices", service: CentralCloud, env: map[string]string{EnvInstanceID: "cc-2"}, want: "cc-2"},
		{name: "FlagOverEnv", service: Singularity, file: file, env: map[string]string{EnvInstanceID: "from_env"},
			overrides: Overrides{InstanceID: "S-3"}, want: "S-3"},
		{name: "SixtyFourCharacters", service: Singularity, env: map[string]string{EnvInstanceID: strings.Repeat("i", 64)},
			want: strings.Repeat("i", 64)},
		{name: "NumberInFile", service: Singularity, file: "singularity:\n  instance_id: 7\n", want: "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: tt.service, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.InstanceID)
			want := mustDefault(t, tt.service)
			want.InstanceID = tt.want
			require.Equal(t, want, cfg, "nothing else changes")
		})
	}
}

func TestDefaultInstanceIDIsValid(t *testing.T) {
	t.Parallel()
	id := DefaultInstanceID()
	require.Empty(t, checkInstanceID(id), id)
	host, err := os.Hostname()
	if err == nil && checkInstanceID(host) == "" {
		require.Equal(t, host, id, "a valid host name is the id as it is")
	}
}

// TestLoadMessagingURL checks where the backend URL comes from:
// messaging_url at any level over database_url at any level, each the
// highest level that sets it.
func TestLoadMessagingURL(t *testing.T) {
	t.Parallel()
	const (
		fileDB  = "postgres://file/db"
		fileMsg = "postgres://file/queues"
		envDB   = "postgres://env/db"
		envMsg  = "nats://env:4222"
		flagDB  = "postgres://flag/db"
		flagMsg = "mem://flag"
	)
	withDB := "singularity:\n  database_url: " + fileDB + "\n"
	withBoth := withDB + "  messaging_url: " + fileMsg + "\n"
	tests := []struct {
		name            string
		file            string
		env             map[string]string
		overrides       Overrides
		wantDB, wantMsg string
		wantBackend     string
	}{
		{name: "Seed", wantDB: DefaultSingularityURL, wantBackend: DefaultSingularityURL},
		{name: "FileDatabaseURL", file: withDB, wantDB: fileDB, wantBackend: fileDB},
		{name: "FileMessagingURL", file: withBoth, wantDB: fileDB, wantMsg: fileMsg, wantBackend: fileMsg},
		{name: "FileMessagingURLOverEnvDatabaseURL", file: withBoth, env: map[string]string{EnvDatabaseURL: envDB},
			wantDB: envDB, wantMsg: fileMsg, wantBackend: fileMsg},
		{name: "EnvMessagingURLOverFile", file: withBoth, env: map[string]string{EnvMessagingURL: envMsg},
			wantDB: fileDB, wantMsg: envMsg, wantBackend: envMsg},
		{name: "FlagURLOverEnv", env: map[string]string{EnvMessagingURL: envMsg, EnvDatabaseURL: envDB},
			overrides: Overrides{MessagingURL: flagMsg}, wantDB: envDB, wantMsg: flagMsg, wantBackend: flagMsg},
		{name: "FlagDatabaseURLIsOnlyTheFallback", env: map[string]string{EnvMessagingURL: envMsg},
			overrides: Overrides{DatabaseURL: flagDB}, wantDB: flagDB, wantMsg: envMsg, wantBackend: envMsg},
		{name: "FlagDatabaseURLWithoutMessagingURL", file: withDB,
			overrides: Overrides{DatabaseURL: flagDB}, wantDB: flagDB, wantBackend: flagDB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: Singularity, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			require.Equal(t, tt.wantDB, cfg.DatabaseURL)
			require.Equal(t, tt.wantMsg, cfg.MessagingURL)
			require.Equal(t, tt.wantBackend, cfg.BackendURL())
		})
	}
}

// TestLoadHandlerMethod checks the rule for the seed's two handler keys:
// handler_method, when given, names the handler; else handler does.
func TestLoadHandlerMethod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		entry string
		want  string
	}{
		{name: "Seed", entry: "handler: Singularity.Evolution.QuantumFlow.Consumers\n      handler_method: handle_consensus_result",
			want: HandleConsensusResult},
		{name: "MethodFirst", entry: "handler_method: on_result\n      handler: Singularity.Evolution.QuantumFlow.Consumers",
			want: "on_result"},
		{name: "MethodOnly", entry: "handler_method: on_result", want: "on_result"},
		{name: "HandlerOnly", entry: "handler: on_result", want: "on_result"},
		{name: "MethodWinsOverAName", entry: "handler: on_result\n      handler_method: on_consensus", want: "on_consensus"},
		{name: "Neither", entry: "workers: 2", want: HandleConsensusResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, "singularity:\n  consumers:\n    consensus_results:\n      "+tt.entry+"\n")
			cfg, err := Load(LoadOptions{Service: Singularity, Path: path, LookupEnv: envOf(nil)})
			require.NoError(t, err)
			c, ok := cfg.Consumer(ConsensusQueue)
			require.True(t, ok)
			require.Equal(t, tt.want, c.Handler)
		})
	}
}

// TestLoadDelivery checks delivery: from the file, on either side; a file
// with one service's section is not checked against the other's seed
// defaults, since that service may load a file of its own.
func TestLoadDelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		service string
		file    string
		queue   string
		want    Delivery
	}{
		{name: "SeedConsumer", service: Singularity, queue: SafetyProfilesQueue, want: DeliveryBroadcast},
		{name: "SeedProducer", service: CentralCloud, queue: ConsensusQueue, want: DeliveryAddressed},
		{name: "BothSidesInOneFile", service: Singularity, queue: ConsensusQueue, want: DeliveryWork,
			file: "singularity:\n  consumers:\n    consensus_results: {delivery: work}\ncentralcloud:\n  producers:\n    consensus_results: {delivery: work}\n"},
		{name: "BothSidesInOneFileOtherService", service: CentralCloud, queue: ConsensusQueue, want: DeliveryWork,
			file: "singularity:\n  consumers:\n    consensus_results: {delivery: work}\ncentralcloud:\n  producers:\n    consensus_results: {delivery: work}\n"},
		{name: "OneSectionIsNotPaired", service: Singularity, queue: MetricsQueue, want: DeliveryBroadcast,
			file: "singularity:\n  producers:\n    metrics_to_guardian: {delivery: broadcast}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: tt.service, LookupEnv: envOf(nil)}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			c, ok := cfg.Consumer(tt.queue)
			got := c.Delivery
			if !ok {
				p, ok := cfg.Producer(tt.queue)
				require.True(t, ok)
				got = p.Delivery
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// TestLoadLimits checks that each bound is a value accepted at every
// level (one past it is refused: TestLoadInvalid).
func TestLoadLimits(t *testing.T) {
	t.Parallel()
	max := strconv.Itoa(MaxWorkers)
	tests := []struct {
		name      string
		file      string
		env       map[string]string
		overrides Overrides
	}{
		{name: "File", file: "singularity:\n  instance_ttl: 720h\n  broadcast_retention: 2160h\n" +
			"  producers:\n    proposals_for_consensus: {workers: " + max + ", max_retries: 1000, retry_delay_ms: 3600000}\n"},
		{name: "Env", env: map[string]string{EnvProposalsWorkers: max, EnvMaxRetries: "1000", EnvRetryDelayMS: "3600000",
			EnvInstanceTTL: "720h", EnvBroadcastRetention: "2160h"}},
		{name: "Flags", overrides: Overrides{Workers: map[string]int{ProposalsQueue: MaxWorkers},
			MaxRetries: intPtr(MaxRetriesLimit), RetryDelay: durPtr(RetryDelayLimit),
			InstanceTTL: durPtr(InstanceTTLLimit), BroadcastRetention: durPtr(BroadcastRetentionLimit)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: Singularity, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			p, _ := cfg.Producer(ProposalsQueue)
			require.Equal(t, MaxWorkers, p.Workers)
			require.Equal(t, MaxRetriesLimit, p.MaxRetries)
			require.Equal(t, RetryDelayLimit, p.RetryDelay)
			require.Equal(t, InstanceTTLLimit, cfg.InstanceTTL)
			require.Equal(t, BroadcastRetentionLimit, cfg.BroadcastRetention)
		})
	}
}

// TestLoadInstanceWaits checks instance_ttl and broadcast_retention at
// every level: the defaults, then the file, the environment, the flags,
// as Go durations down to milliseconds.
func TestLoadInstanceWaits(t *testing.T) {
	t.Parallel()
	file := "singularity:\n  instance_ttl: 12h\n  broadcast_retention: 36h\ncentralcloud:\n  instance_ttl: 250ms\n"
	tests := []struct {
		name                 string
		service              string
		file                 string
		env                  map[string]string
		overrides            Overrides
		wantTTL, wantRetains time.Duration
	}{
		{name: "Default", service: Singularity, wantTTL: 24 * time.Hour, wantRetains: 7 * 24 * time.Hour},
		{name: "File", service: Singularity, file: file, wantTTL: 12 * time.Hour, wantRetains: 36 * time.Hour},
		{name: "FileOtherSection", service: CentralCloud, file: file, wantTTL: 250 * time.Millisecond, wantRetains: DefaultBroadcastRetention},
		{name: "EnvOverFile", service: Singularity, file: file, env: map[string]string{EnvInstanceTTL: "90m"},
			wantTTL: 90 * time.Minute, wantRetains: 36 * time.Hour},
		{name: "EnvBothServices", service: CentralCloud, env: map[string]string{EnvInstanceTTL: "2h", EnvBroadcastRetention: " 48h "},
			wantTTL: 2 * time.Hour, wantRetains: 48 * time.Hour},
		{name: "EnvEmptyIsUnset", service: Singularity, env: map[string]string{EnvInstanceTTL: "", EnvBroadcastRetention: ""},
			wantTTL: DefaultInstanceTTL, wantRetains: DefaultBroadcastRetention},
		{name: "FlagsOverEnv", service: Singularity, file: file, env: map[string]string{EnvInstanceTTL: "90m", EnvBroadcastRetention: "3h"},
			overrides: Overrides{InstanceTTL: durPtr(5 * time.Millisecond), BroadcastRetention: durPtr(40 * time.Millisecond)},
			wantTTL:   5 * time.Millisecond, wantRetains: 40 * time.Millisecond},
		{name: "RetentionShorterThanTTL", service: Singularity, env: map[string]string{EnvBroadcastRetention: "1h"},
			wantTTL: DefaultInstanceTTL, wantRetains: time.Hour},
		{name: "Minimum", service: Singularity, env: map[string]string{EnvInstanceTTL: "1ms", EnvBroadcastRetention: "1000us"},
			wantTTL: MinInstanceWait, wantRetains: MinInstanceWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{Service: tt.service, LookupEnv: envOf(tt.env), Overrides: tt.overrides}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			cfg, err := Load(opts)
			require.NoError(t, err)
			require.Equal(t, tt.wantTTL, cfg.InstanceTTL)
			require.Equal(t, tt.wantRetains, cfg.BroadcastRetention)
			want := mustDefault(t, tt.service)
			want.InstanceTTL, want.BroadcastRetention = tt.wantTTL, tt.wantRetains
			require.Equal(t, want, cfg, "nothing else changes")
		})
	}
}
