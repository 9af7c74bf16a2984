package topology

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// backendLines are CheckPair's problems for services on two backends:
// one per queue, in the order of QueueNames, each naming its producer's
// and its consumer's URL.
func backendLines(singURL, ccURL, why string) []string {
	var out []string
	cc, _ := Default(CentralCloud)
	for _, q := range QueueNames() {
		from, fromURL, to, toURL := Singularity, singURL, CentralCloud, ccURL
		if _, ok := cc.Producer(q); ok {
			from, fromURL, to, toURL = CentralCloud, ccURL, Singularity, singURL
		}
		out = append(out, q+": "+from+" publishes to \""+fromURL+"\" and "+to+" consumes from \""+toURL+"\": not one messaging backend ("+why+")")
	}
	return out
}

const setAlike = "set messaging_url or QUANTUM_FLOW_MESSAGING_URL alike for both services"

func TestCheckPair(t *testing.T) {
	t.Parallel()
	// Each case changes the seed's defaults of one side or both.
	tests := []struct {
		name      string
		sing, cc  func(*ServiceConfig)
		wantLines []string // nil: no error
	}{
		{
			name:      "SeedDefaultsAreTwoDatabases",
			wantLines: backendLines(DefaultSingularityURL, DefaultCentralCloudURL, setAlike),
		},
		{
			name: "OneMessagingURL",
			sing: func(c *ServiceConfig) { c.MessagingURL = "postgres://db.internal/queues" },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "postgres://db.internal/queues" },
		},
		{
			name: "MessagingURLMeetsTheOtherDatabaseURL",
			sing: func(c *ServiceConfig) { c.MessagingURL = DefaultCentralCloudURL },
		},
		{
			name: "CredentialsAndTuningDoNotCount",
			sing: func(c *ServiceConfig) {
				c.MessagingURL = "postgresql://sing:s3cret@DB.internal:5432/queues/?sslmode=require&batch=100"
			},
			cc: func(c *ServiceConfig) { c.MessagingURL = "postgres://cc:hunter2@db.internal/queues?schema=public" },
		},
		{
			name:      "OtherSchema",
			sing:      func(c *ServiceConfig) { c.MessagingURL = "postgres://sing:s3cret@db/queues?schema=a" },
			cc:        func(c *ServiceConfig) { c.MessagingURL = "postgres://cc:hunter2@db/queues" },
			wantLines: backendLines("postgres://sing:xxxxx@db/queues?schema=a", "postgres://cc:xxxxx@db/queues", setAlike),
		},
		{
			name: "NatsAndTLSOnOneServer",
			sing: func(c *ServiceConfig) { c.MessagingURL = "tls://t0ken@nats.internal:4222" },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "nats://nats.internal?prefix=QF" },
		},
		{
			name:      "OtherNatsPrefix",
			sing:      func(c *ServiceConfig) { c.MessagingURL = "nats://t0ken@nats.internal:4222?prefix=TEST" },
			cc:        func(c *ServiceConfig) { c.MessagingURL = "nats://nats.internal:4222" },
			wantLines: backendLines("nats://xxxxx@nats.internal:4222?prefix=TEST", "nats://nats.internal:4222", setAlike),
		},
		{
			name:      "OtherPort",
			sing:      func(c *ServiceConfig) { c.MessagingURL = "nats://nats.internal:4223" },
			cc:        func(c *ServiceConfig) { c.MessagingURL = "nats://nats.internal" },
			wantLines: backendLines("nats://nats.internal:4223", "nats://nats.internal", setAlike),
		},
		{
			name: "OneMemName",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://demo" },
			cc:   func(c *ServiceConfig) { c.DatabaseURL = "mem://demo" },
		},
		{
			name:      "MemNamesAreCaseSensitive",
			sing:      func(c *ServiceConfig) { c.MessagingURL = "mem://Demo" },
			cc:        func(c *ServiceConfig) { c.MessagingURL = "mem://demo" },
			wantLines: backendLines("mem://Demo", "mem://demo", setAlike),
		},
		{
			name: "PrivateMem",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://" },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "mem://" },
			wantLines: backendLines("mem://", "mem://",
				"mem:// without a NAME is private to each backend that opens it; use mem://NAME"),
		},
		{
			name: "DeliveryDisagrees",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.Consumers[1].Delivery = DeliveryBroadcast },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "mem://one" },
			wantLines: []string{
				`rollback_triggers_queue: centralcloud.producers.rollback_triggers.delivery="addressed" and singularity.consumers.rollback_triggers.delivery="broadcast" differ: the producer and the consumer of a queue must agree on its delivery`,
			},
		},
		{
			name: "DeliveryChangedOnBothSides",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.Consumers[0].Delivery = DeliveryWork },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.Producers[0].Delivery = DeliveryWork },
		},
		{
			name: "InstanceWaitsDisagree",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.InstanceTTL = 12 * time.Hour },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.BroadcastRetention = 500 * time.Millisecond },
			wantLines: []string{
				`instance_ttl: singularity.instance_ttl=12h and centralcloud.instance_ttl=24h differ: the producing service's router dead-letters by its own value; set them alike`,
				`broadcast_retention: singularity.broadcast_retention=168h and centralcloud.broadcast_retention=500ms differ: the producing service's router dead-letters by its own value; set them alike`,
			},
		},
		{
			name: "InstanceWaitsZeroIsTheDefault",
			sing: func(c *ServiceConfig) { c.MessagingURL = "mem://one"; c.InstanceTTL, c.BroadcastRetention = 0, 0 },
			cc:   func(c *ServiceConfig) { c.MessagingURL = "mem://one" },
		},
		{
			name: "BackendAndDelivery",
			cc:   func(c *ServiceConfig) { c.Consumers[0].Delivery = DeliveryBroadcast },
			wantLines: append(backendLines(DefaultSingularityURL, DefaultCentralCloudURL, setAlike),
				`proposals_for_consensus_queue: singularity.producers.proposals_for_consensus.delivery="work" and centralcloud.consumers.proposals.delivery="broadcast" differ: the producer and the consumer of a queue must agree on its delivery`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sing, cc := mustDefault(t, Singularity), mustDefault(t, CentralCloud)
			if tt.sing != nil {
				tt.sing(&sing)
			}
			if tt.cc != nil {
				tt.cc(&cc)
			}
			require.NoError(t, sing.Validate())
			require.NoError(t, cc.Validate())
			for _, order := range [][2]ServiceConfig{{sing, cc}, {cc, sing}} {
				err := CheckPair(order[0], order[1])
				if tt.wantLines == nil {
					require.NoError(t, err)
					continue
				}
				require.ErrorIs(t, err, ErrInvalidConfig)
				var ce *ConfigError
				require.ErrorAs(t, err, &ce)
				require.Equal(t, tt.wantLines, ce.Problems)
				for _, secret := range []string{"s3cret", "hunter2", "t0ken"} {
					require.NotContains(t, err.Error(), secret)
				}
			}
		})
	}
}

func TestCheckPairNeedsBothServices(t *testing.T) {
	t.Parallel()
	sing := mustDefault(t, Singularity)
	err := CheckPair(sing, sing)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, `invalid configuration: services "singularity" and "singularity": need one singularity and one centralcloud configuration`)
	err = CheckPair(ServiceConfig{}, mustDefault(t, CentralCloud))
	require.EqualError(t, err, `invalid configuration: services "" and "centralcloud": need one singularity and one centralcloud configuration`)
}

// TestCheckPairLoaded checks the pair as the CLI gets it: both services
// loaded from one environment.
func TestCheckPairLoaded(t *testing.T) {
	t.Parallel()
	load := func(env map[string]string) (ServiceConfig, ServiceConfig) {
		sing, err := Load(LoadOptions{Service: Singularity, LookupEnv: envOf(env)})
		require.NoError(t, err)
		cc, err := Load(LoadOptions{Service: CentralCloud, LookupEnv: envOf(env)})
		require.NoError(t, err)
		return sing, cc
	}
	sing, cc := load(nil)
	require.ErrorIs(t, CheckPair(sing, cc), ErrInvalidConfig)

	// QUANTUM_FLOW_DATABASE_URL set alike is one backend too.
	sing, cc = load(map[string]string{EnvDatabaseURL: "postgres://db/app"})
	require.NoError(t, CheckPair(sing, cc))

	sing, cc = load(map[string]string{EnvMessagingURL: "nats://nats:4222"})
	require.NoError(t, CheckPair(sing, cc))
	require.Equal(t, "nats://nats:4222", sing.BackendURL())
	require.Equal(t, DefaultSingularityURL, sing.DatabaseURL, "database_url keeps its own value")
}

func TestSameBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		same bool
	}{
		{"postgres://db/app", "postgresql://db/app", true},
		{"postgres://db/app", "postgres://DB:5432/app/", true},
		{"postgres://u:p@db/app?sslmode=disable&lease=10s", "postgres://v:q@db/app?schema=public", true},
		{"postgres://db/app", "postgres://db/other", false},
		{"postgres://db/app", "postgres://db2/app", false},
		{"postgres://db/app", "postgres://db:5433/app", false},
		{"postgres://db/app?schema=a", "postgres://db/app?schema=b", false},
		{"postgres://[::1]/app", "postgres://[::1]:5432/app", true},
		{"postgres://db/app", "nats://db:4222", false},
		{"nats://n:4222", "tls://n", true},
		{"nats://n?prefix=QF", "nats://n", true},
		{"nats://n?prefix=A", "nats://n?prefix=B", false},
		{"nats://tok@n", "nats://n", true},
		{"mem://x", "mem://x", true},
		{"mem://x", "mem://y", false},
		{"mem://", "mem://", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			t.Parallel()
			same, why := sameBackend(tt.a, tt.b)
			require.Equal(t, tt.same, same)
			same, _ = sameBackend(tt.b, tt.a)
			require.Equal(t, tt.same, same, "symmetric")
			require.Equal(t, same, why == "")
		})
	}
}
