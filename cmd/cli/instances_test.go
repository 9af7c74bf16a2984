package cli_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// unreachable is a backend URL that fails to open (exit 1): a command that
// exits 2 with it refused its arguments before opening anything.
const unreachable = "nats://127.0.0.1:1"

func TestDeliveryModeUsageExit2(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"PublishAddressedWithoutTo", []string{"publish", "--raw", topology.ConsensusQueue, "--payload", "{}"},
			[]string{topology.ConsensusQueue, "addressed delivery", "--to INSTANCE"}},
		{"PublishRollbackWithoutTo", []string{"publish", "--raw", topology.RollbackQueue, "--payload", "{}"},
			[]string{topology.RollbackQueue, "addressed delivery"}},
		{"PublishToOnWorkQueue", []string{"publish", "--raw", topology.ProposalsQueue, "--payload", "{}", "--to", "s1"},
			[]string{topology.ProposalsQueue, "work delivery", "drop --to"}},
		{"PublishToAllOnWorkQueue", []string{"publish", "--raw", topology.ProposalsQueue, "--payload", "{}", "--to", "all"},
			[]string{topology.ProposalsQueue, "work delivery"}},
		{"PublishToBadID", []string{"publish", "--raw", topology.ConsensusQueue, "--payload", "{}", "--to", "no such!"},
			[]string{"--to", "no such!", "not an instance id"}},
		{"PublishTwoTargets", []string{"publish", "--raw", topology.ConsensusQueue + "@s1", "--payload", "{}", "--to", "s2"},
			[]string{"names instance s1 and --to names s2"}},
		{"ConsumeAddressedWithoutInstance", []string{"consume", topology.ConsensusQueue},
			[]string{topology.ConsensusQueue, "addressed delivery", "--instance ID"}},
		{"ConsumeBroadcastWithoutInstance", []string{"consume", topology.SafetyProfilesQueue},
			[]string{topology.SafetyProfilesQueue, "broadcast delivery", "--instance ID"}},
		{"ConsumeInstanceOnWorkQueue", []string{"consume", topology.MetricsQueue, "--instance", "s1"},
			[]string{topology.MetricsQueue, "work delivery"}},
		{"ConsumeInstanceAll", []string{"consume", topology.ConsensusQueue, "--instance", "all"},
			[]string{"--instance", "not an instance id"}},
		{"StatsInstanceOnWorkQueue", []string{"stats", topology.PatternsQueue, "--instance", "s1"},
			[]string{topology.PatternsQueue, "work delivery"}},
		{"PendingInstanceOnWorkQueue", []string{"pending", topology.PatternsQueue + "@s1"},
			[]string{topology.PatternsQueue, "work delivery"}},
		{"DLQTwoInstances", []string{"dlq", "list", "--queue", topology.ConsensusQueue + "@s1", "--instance", "s2"},
			[]string{"names instance s1 and --instance names s2"}},
		{"DLQAllWithInstance", []string{"dlq", "purge", "--all", "--instance", "s2"},
			[]string{"--all cannot be combined"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, jsonOut := range []bool{false, true} {
				args := append([]string{"--url", unreachable}, c.args...)
				if jsonOut {
					args = append(args, "--json")
				}
				r := noEnv().run(t, args...)
				require.Equal(t, cli.ExitUsage, r.code, "stderr: %s", r.stderr)
				for _, w := range c.want {
					require.Contains(t, r.stderr, w)
				}
				require.Empty(t, r.stdout)
			}
		})
	}
}

// consumeInBackground runs `consume` until it returns, and returns a
// channel that receives its result.
func (b *bundle) consumeInBackground(t *testing.T, ctx context.Context, args ...string) <-chan result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- b.runCtx(t, ctx, nil, append([]string{"consume"}, args...)...) }()
	return done
}

// waitResult waits for a background command.
func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("the command did not finish")
		return result{}
	}
}

// instances returns the registry as `instances --json` prints it, by id.
func (b *bundle) instances(t *testing.T, args ...string) map[string]map[string]any {
	t.Helper()
	r := b.run(t, append([]string{"instances", "--json"}, args...)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	out := map[string]map[string]any{}
	for _, row := range r.lines(t) {
		out[row["id"].(string)] = row
	}
	return out
}

// registered counts the instances `instances` lists; -1 when it fails. It
// does not fail the test, for use in require.Eventually.
func (b *bundle) registered(t *testing.T) int {
	r := b.run(t, "instances", "--json")
	if r.code != cli.ExitOK {
		return -1
	}
	return strings.Count(r.stdout, "\n")
}

// TestAddressedPublishAndConsume is the operator's round trip on an
// addressed queue: messages for two instances wait apart, each instance's
// consume gets only its own and is registered while it runs, --to all
// reaches every registered instance, a duplicate id is refused.
func TestAddressedPublishAndConsume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.RollbackQueue
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)

	r := b.run(t, "publish", "--raw", q, "--payload", `{"reason":"s1"}`, "--to", "s1", "--count", "3", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stderr, "not registered", "a message for an unknown instance is published with a warning")
	for _, row := range r.lines(t) {
		require.Equal(t, q, row["queue"])
		require.Equal(t, "s1", row["instance"])
	}
	r = b.run(t, "publish", "--raw", q+"@s2", "--payload", `{"reason":"s2"}`, "--count", "2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	require.True(t, strings.HasSuffix(lines[0], " s2"), "text lines are ID INSTANCE: %q", lines[0])

	// The instance queues keep the queue's settings: a rollback is high.
	r = b.run(t, "queues", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	byName := map[string]map[string]any{}
	for _, row := range r.lines(t) {
		name := row["queue"].(string)
		if inst, ok := row["instance"]; ok {
			name += "@" + inst.(string)
		}
		byName[name] = row
	}
	require.EqualValues(t, pubsub.PriorityHigh, byName[q+"@s1"]["priority"])
	require.EqualValues(t, 3, byName[q+"@s1"]["pending"])
	require.EqualValues(t, 2, byName[q+"@s2"]["pending"])
	r = b.run(t, "queues")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `(?m)^`+q+`\s+s1\s`, r.stdout, "instance queues have the INSTANCE column")

	r = b.run(t, "stats", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	st := r.lines(t)
	require.Len(t, st, 3, "s1, s2 and the total")
	require.Equal(t, "s1", st[0]["instance"])
	require.EqualValues(t, 3, st[0]["pending"])
	require.Equal(t, "s2", st[1]["instance"])
	require.Equal(t, true, st[2]["total"])
	require.EqualValues(t, 5, st[2]["pending"])
	r = b.run(t, "stats", q)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `(?m)^total\s+5\s`, r.stdout)
	r = b.run(t, "stats", q, "--instance", "s2", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, "s2", r.lines(t)[0]["instance"])
	require.EqualValues(t, 2, r.lines(t)[0]["pending"])

	r = b.run(t, "pending", q, "--instance", "s1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 3)
	for _, row := range r.lines(t) {
		require.Equal(t, "s1", row["instance"])
		require.Equal(t, q, row["queue"])
	}
	r = b.run(t, "pending", q, "--json", "--limit", "4")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 4, "every instance's, up to --limit")

	// s1 consumes its own three, registered while it runs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s1 := b.consumeInBackground(t, ctx, q, "--instance", "s1", "--json")
	require.Eventually(t, func() bool { return b.registered(t) == 1 }, 10*time.Second, 20*time.Millisecond)
	inst := b.instances(t)["s1"]
	require.Equal(t, "live", inst["state"])
	require.Equal(t, topology.Singularity, inst["service"], "the consuming service of the queue")
	require.EqualValues(t, os.Getpid(), inst["pid"])

	// A second process under the same id is refused, naming the host.
	r = b.run(t, "consume", q, "--instance", "s1", "--max", "1")
	require.Equal(t, cli.ExitFailure, r.code, r.stderr)
	host, _ := os.Hostname()
	require.Contains(t, r.stderr, "host "+host)
	require.Contains(t, r.stderr, "s1")

	// --to all reaches every registered instance: s1 now, and s2 once it
	// runs.
	s2 := b.consumeInBackground(t, ctx, q+"@s2", "--max", "3", "--json")
	require.Eventually(t, func() bool { return b.registered(t) == 2 }, 10*time.Second, 20*time.Millisecond)
	r = b.run(t, "publish", "--raw", q, "--payload", `{"reason":"everyone"}`, "--to", "all", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	copies := r.lines(t)
	require.Len(t, copies, 2)
	require.Equal(t, copies[0]["id"], copies[1]["id"], "copies keep their message's id")
	require.ElementsMatch(t, []any{"s1", "s2"}, []any{copies[0]["instance"], copies[1]["instance"]})

	got2 := waitResult(t, s2)
	require.Equal(t, cli.ExitOK, got2.code, got2.stderr)
	var reasons []string
	for _, row := range got2.lines(t) {
		require.Equal(t, "s2", row["instance"])
		require.Equal(t, q, row["queue"])
		reasons = append(reasons, row["payload"].(map[string]any)["reason"].(string))
	}
	require.ElementsMatch(t, []string{"s2", "s2", "everyone"}, reasons)

	require.Eventually(t, func() bool {
		st, err := b.backend.Stats(ctx, pubsub.InstanceQueue(q, "s1"))
		return err == nil && st.Pending+st.InFlight == 0
	}, 10*time.Second, 20*time.Millisecond, "s1 consumed its own and its copy")
	cancel()
	got1 := waitResult(t, s1)
	require.Equal(t, cli.ExitOK, got1.code, got1.stderr)
	require.Len(t, got1.lines(t), 4)
	for _, row := range got1.lines(t) {
		require.Equal(t, "s1", row["instance"])
	}
	// Stopped, both keep their records, stale: what is addressed to them
	// waits for them (until instance_ttl), so --to all still reaches them.
	for id, row := range b.instances(t) {
		require.Equal(t, pubsub.InstanceStale, row["state"], "%s stopped at exit", id)
	}
	r = b.run(t, "publish", "--raw", q, "--payload", "{}", "--to", "all")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, strings.Fields(strings.TrimSpace(r.stdout)), 4, "a copy for s1 and one for s2: ID INSTANCE each")
}

// TestInstancesAndBroadcastWithRouters runs two Singularity routers: the
// registry lists both, a safety profile published by hand reaches each, and
// a consume --instance that joins later gets the latest.
func TestInstancesAndBroadcastWithRouters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	profiles := map[string][]string{}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	for _, id := range []string{"sing-1", "sing-2"} {
		cfg, err := topology.Load(topology.LoadOptions{Service: topology.Singularity, LookupEnv: func(string) (string, bool) { return "", false },
			Overrides: topology.Overrides{MessagingURL: b.url, InstanceID: id}})
		require.NoError(t, err)
		ok := func(*message.Message) error { return nil }
		r, err := router.New(router.Config{Service: cfg, Backend: b.backend, Version: "test", Handlers: map[string]router.Handler{
			topology.HandleConsensusResult: ok, topology.HandleRollbackTrigger: ok,
			topology.HandleSafetyProfileUpdate: func(msg *message.Message) error {
				mu.Lock()
				defer mu.Unlock()
				profiles[id] = append(profiles[id], string(msg.Payload))
				return nil
			},
		}})
		require.NoError(t, err)
		running.Go(func() { _ = r.Run(ctx) })
	}
	require.Eventually(t, func() bool { return b.registered(t) == 2 }, 10*time.Second, 20*time.Millisecond)

	insts := b.instances(t, "--service", topology.Singularity)
	for _, id := range []string{"sing-1", "sing-2"} {
		require.Equal(t, "live", insts[id]["state"])
		require.Equal(t, "test", insts[id]["version"])
		require.Len(t, insts[id]["consumers"], 3)
	}
	require.Empty(t, b.instances(t, "--service", topology.CentralCloud))
	r := b.run(t, "instances")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `^SERVICE\s+ID\s+STATE\s+HOST\s+PID\s+VERSION\s+STARTED\s+LAST HEARTBEAT\s+CONSUMERS\n`, r.stdout)
	require.Regexp(t, `(?m)^singularity\s+sing-1\s+live\s`, r.stdout)
	require.Contains(t, r.stdout, topology.SafetyProfilesQueue+":1")

	q := topology.SafetyProfilesQueue
	r = b.run(t, "publish", "--raw", q, "--payload", `"v1"`, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 2, "a copy for each instance")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(profiles["sing-1"]) == 1 && len(profiles["sing-2"]) == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{`"v1"`}, profiles["sing-1"])

	// A rollback for one instance reaches only it.
	r = b.run(t, "publish", "--raw", topology.RollbackQueue, "--payload", "{}", "--to", "sing-2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.NotContains(t, r.stderr, "not registered")

	r = b.run(t, "stats", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	rows := r.lines(t)
	require.Len(t, rows, 3)
	require.EqualValues(t, 2, rows[2]["instances"])

	// An instance that joins later gets the queue's latest.
	r = b.run(t, "consume", q, "--instance", "late", "--max", "1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, "v1", r.lines(t)[0]["payload"])
	require.Equal(t, "late", r.lines(t)[0]["instance"])
	require.Equal(t, pubsub.InstanceStale, b.instances(t)["late"]["state"], "stopped at exit")
}

func TestBroadcastWithoutInstancesKeepsTheLatest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.SafetyProfilesQueue
	r := b.run(t, "publish", "--raw", q, "--payload", `{"v":2}`)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Empty(t, r.stdout, "no instance, no copy")
	require.Contains(t, r.stderr, "kept as the queue's latest")
	r = b.run(t, "consume", q, "--instance", "first", "--max", "1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, map[string]any{"v": float64(2)}, r.lines(t)[0]["payload"])
}

func TestPublishOriginFromInstanceFlag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.ProposalsQueue
	require.Equal(t, cli.ExitOK, b.run(t, "publish", "--raw", q, "--payload", "{}", "--instance", "ops-1").code)
	r := b.run(t, "pending", q, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, "ops-1", r.lines(t)[0]["metadata"].(map[string]any)[pubsub.MetadataOrigin], "replies go to the instance named")

	r = b.run(t, "config", "show", "--json", "--instance", "ops-1")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, "ops-1", r.lines(t)[0]["config"].(map[string]any)["instance_id"])
	r = b.run(t, "queues", "--instance", "all")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, `--instance="all"`)
}

// deadLetterFor dead-letters n messages of instance's queue of queue.
func deadLetterFor(t *testing.T, b *pubsub.Backend, queue, instance string, n int) []string {
	t.Helper()
	for range n {
		require.NoError(t, b.PublishTo(queue, instance, message.NewMessage(watermill.NewUUID(), []byte(`{"for":"`+instance+`"}`))))
	}
	return deadLetter(t, b, pubsub.InstanceQueue(queue, instance), n)
}

func TestDeadLettersPerInstance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	q := topology.ConsensusQueue
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	s1 := deadLetterFor(t, b.backend, q, "s1", 2)
	s2 := deadLetterFor(t, b.backend, q, "s2", 1)
	work := deadLetter(t, b.backend, topology.ProposalsQueue, 1)

	list := func(args ...string) []map[string]any {
		t.Helper()
		r := b.run(t, append([]string{"dlq", "list", "--json"}, args...)...)
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		return r.lines(t)
	}
	ids := func(rows []map[string]any) []any {
		var out []any
		for _, r := range rows {
			out = append(out, r["id"])
		}
		return out
	}
	all := list()
	require.Len(t, all, 4)
	for _, row := range all {
		switch row["id"] {
		case work[0]:
			require.Equal(t, topology.ProposalsQueue, row["queue"])
			require.NotContains(t, row, "instance")
		default:
			require.Equal(t, q, row["queue"])
			require.Contains(t, []any{"s1", "s2"}, row["instance"])
		}
	}
	require.ElementsMatch(t, []any{s1[0], s1[1], s2[0]}, ids(list("--queue", q)), "a queue's dead letters are its instances'")
	require.ElementsMatch(t, []any{s1[0], s1[1]}, ids(list("--queue", q+"@s1")))
	require.ElementsMatch(t, []any{s2[0]}, ids(list("--queue", q, "--instance", "s2")))
	require.ElementsMatch(t, []any{s1[0], s1[1]}, ids(list("--instance", "s1")))
	require.Len(t, list("--queue", q, "--limit", "2"), 2)

	r := b.run(t, "dlq", "list", "--queue", q)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `(?m)^ID\s+QUEUE\s+INSTANCE\s`, r.stdout)

	// A retry goes back to the instance's queue.
	r = b.run(t, "dlq", "retry", "--queue", q, "--instance", "s1", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.EqualValues(t, 2, r.lines(t)[0]["retried"])
	require.Equal(t, "s1", r.lines(t)[0]["instance"])
	st, err := b.backend.Stats(ctx, pubsub.InstanceQueue(q, "s1"))
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Pending)
	require.Zero(t, st.DeadLetters)

	r = b.run(t, "dlq", "purge", "--instance", "s2")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "purged 1 dead letter(s) (instance s2)")
	require.ElementsMatch(t, []any{work[0]}, ids(list()))
}

// TestCountLimits checks every count flag's upper bound: refused with
// exit 2 naming the flag and the limit, before the backend is opened.
func TestCountLimits(t *testing.T) {
	t.Parallel()
	manyIDs := strings.TrimSuffix(strings.Repeat("x,", cli.MaxIDs+1), ",")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"consume", topology.ProposalsQueue, "--workers", "100000000"}, "--workers 100000000: at most 1024"},
		{[]string{"consume", topology.ProposalsQueue, "--workers", "1025"}, "--workers 1025: at most 1024"},
		{[]string{"consume", topology.ProposalsQueue, "--workers", "0"}, "--workers must be positive"},
		{[]string{"consume", topology.ProposalsQueue, "--max", "1000001"}, "--max 1000001: at most 1000000"},
		{[]string{"consume", topology.ProposalsQueue, "--max", "-1"}, "--max must be >= 0"},
		{[]string{"publish", "--raw", topology.ProposalsQueue, "--payload", "{}", "--count", "100001"}, "--count 100001: at most 100000"},
		{[]string{"publish", "--raw", topology.ProposalsQueue, "--payload", "{}", "--count", "0"}, "--count must be positive"},
		{[]string{"pending", topology.ProposalsQueue, "--limit", "10001"}, "--limit 10001: at most 10000"},
		{[]string{"dlq", "list", "--limit", "99999999999"}, "--limit 99999999999: at most 10000"},
		{[]string{"dlq", "list", "--limit", "0"}, "--limit must be positive"},
		{[]string{"dlq", "retry", "--id", manyIDs}, "--id given 10001 times: at most 10000"},
		{[]string{"dlq", "purge", "--id", manyIDs}, "--id given 10001 times: at most 10000"},
		{[]string{"demo", "--instances", "65"}, "--instances 65: at most 64"},
		{[]string{"demo", "--rounds", "10001"}, "--rounds 10001: at most 10000"},
		{[]string{"demo", "--max-retries", "1001"}, "--max-retries 1001: at most 1000"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:2], "_")+"_"+c.want[:8], func(t *testing.T) {
			t.Parallel()
			r := noEnv().run(t, append([]string{"--url", unreachable}, c.args...)...)
			require.Equal(t, cli.ExitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout)
		})
	}
	// Counts set in the environment are bounded too (topology.MaxWorkers).
	b := noEnv()
	b.env[topology.EnvProposalsWorkers] = "99999999999"
	for _, args := range [][]string{{"config", "check"}, {"consume", topology.ProposalsQueue, "--url", unreachable}} {
		r := b.run(t, args...)
		require.Equal(t, cli.ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, topology.EnvProposalsWorkers)
		require.Contains(t, r.stderr, "1024")
	}
}

// TestConfigCheckPair checks both services together: on different
// backends it fails naming the queue and both URLs, redacted.
func TestConfigCheckPair(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/two.yaml"
	require.NoError(t, os.WriteFile(path, []byte(
		"singularity:\n  database_url: postgres://app:s3cretpw@db1/sing\ncentralcloud:\n  database_url: postgres://app:s3cretpw@db2/cc\n"), 0o600))
	for _, args := range [][]string{{"config", "check"}, {"config", "check", "--service", "all"}, {"config", "check", "--service", "all", "--json"}} {
		r := noEnv().run(t, append(args, "--config", path)...)
		require.Equal(t, cli.ExitUsage, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, topology.ConsensusQueue)
		require.Contains(t, r.stderr, "postgres://app:xxxxx@db1/sing")
		require.Contains(t, r.stderr, "postgres://app:xxxxx@db2/cc")
		require.NotContains(t, r.stdout+r.stderr, "s3cretpw")
	}
	r := noEnv().run(t, "config", "check", "--service", topology.Singularity, "--config", path)
	require.Equal(t, cli.ExitOK, r.code, "one service alone: %s", r.stderr)

	// One messaging backend for both: ok, one line per service.
	b := noEnv()
	b.env[topology.EnvMessagingURL] = "postgres://app:s3cretpw@db/queues"
	r = b.run(t, "config", "check", "--service", "all", "--config", path)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "singularity: ok (postgres://app:xxxxx@db/queues")
	require.Contains(t, lines[1], "centralcloud: ok (postgres://app:xxxxx@db/queues")
	r = noEnv().run(t, "config", "check", "--service", "all", "--url", "mem://shared", "--config", path, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 2)
	require.Equal(t, "mem://shared", r.lines(t)[1]["backend_url"])

	r = b.run(t, "config", "show", "--config", path)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "messaging_url: postgres://app:xxxxx@db/queues")
	require.NotContains(t, r.stdout, "s3cretpw")
	r = noEnv().run(t, "queues", "--service", "all")
	require.Equal(t, cli.ExitUsage, r.code, "all is for config check only")
}

// TestUnparseableURLNeverShown runs the hostile-input battery's URLs that
// do not parse through every way a URL reaches the tool, in text and JSON:
// each is bad configuration (exit 2) and no output shows its secret.
func TestUnparseableURLNeverShown(t *testing.T) {
	t.Parallel()
	for _, u := range badURLs {
		for _, via := range []string{"flag", topology.EnvDatabaseURL, topology.EnvMessagingURL, "file database_url", "file messaging_url"} {
			for _, args := range [][]string{
				{"queues"}, {"config", "check"}, {"config", "show"}, {"instances"},
				{"publish", "--raw", topology.ProposalsQueue, "--payload", "{}"}, {"consume", topology.ConsensusQueue, "--instance", "s1"},
				{"dlq", "list"}, {"demo"},
			} {
				for _, jsonOut := range []bool{false, true} {
					b := noEnv()
					a := append([]string{}, args...)
					switch via {
					case "flag":
						a = append(a, "--url", u)
					case topology.EnvDatabaseURL, topology.EnvMessagingURL:
						b.env[via] = u
					default:
						key := strings.TrimPrefix(via, "file ")
						path := t.TempDir() + "/qf.yaml"
						require.NoError(t, os.WriteFile(path, []byte("singularity:\n  "+key+": '"+u+"'\ncentralcloud:\n  "+key+": '"+u+"'\n"), 0o600))
						a = append(a, "--config", path)
					}
					if jsonOut {
						a = append(a, "--json")
					}
					r := b.run(t, a...)
					require.Equal(t, cli.ExitUsage, r.code, "%q via %s: %v: %s", u, via, args, r.stderr)
					require.NotContains(t, r.stdout+r.stderr, "S3CRET", "%q via %s: %v", u, via, args)
					require.Contains(t, r.stderr, "not a valid URL", "%q via %s: %v", u, via, args)
				}
			}
		}
	}
}

// badURLs are the battery's URLs that do not parse, or parse into no host
// and no password field; each holds the secret S3CRET.
var badURLs = []string{
	"postgres://us er:S3CRET@127.0.0.1/db",
	"postgres://user:S3/CRET@127.0.0.1/db",
	"nats://S3CRET@[::1",
	"host=127.0.0.1 password=S3CRET",
	"postgres:S3CRET@127.0.0.1/db",
}

// TestInstanceWaitsFromConfiguration checks that instances, publish and
// serve go by the configuration's instance_ttl and broadcast_retention
// (environment, then flags), not fixed defaults: an instance silent past
// instance_ttl is gone and skipped by --to all, while broadcasts go on
// reaching it until broadcast_retention.
func TestInstanceWaitsFromConfiguration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env[topology.EnvInstanceTTL] = "50ms"
	crashed := &pubsub.Instance{Service: topology.Singularity, ID: "crashed", Host: "elsewhere", PID: 1, Nonce: "n"}
	require.NoError(t, b.backend.RegisterInstance(context.Background(), crashed, time.Hour))

	require.Eventually(t, func() bool { return b.instances(t)["crashed"]["state"] == "gone" }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "live", b.instances(t, "--instance-ttl", "1h")["crashed"]["state"], "the flag over the environment")

	r := b.run(t, "publish", "--raw", topology.RollbackQueue, "--payload", "{}", "--to", "all")
	require.Equal(t, cli.ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "no instance of singularity is registered with a heartbeat in the last 50ms (instance_ttl)")

	r = b.run(t, "publish", "--raw", topology.SafetyProfilesQueue, "--payload", `"v1"`, "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Len(t, r.lines(t), 1, "within broadcast_retention (168h) a broadcast still reaches it")
	require.Equal(t, "crashed", r.lines(t)[0]["instance"])

	r = b.run(t, "publish", "--raw", topology.SafetyProfilesQueue, "--payload", `"v2"`, "--json", "--broadcast-retention", "50ms")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Empty(t, r.stdout, "past broadcast_retention a broadcast skips it")

	r = b.run(t, "config", "show", "--json", "--broadcast-retention", "90m")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	cfg := r.lines(t)[0]["config"].(map[string]any)
	require.Equal(t, "50ms", cfg["instance_ttl"])
	require.Equal(t, "1h30m", cfg["broadcast_retention"])

	r = b.run(t, "instances", "--instance-ttl", "0s")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "--instance-ttl=0s: must be at least 1ms")
	b.env[topology.EnvBroadcastRetention] = "a week"
	r = b.run(t, "publish", "--raw", topology.SafetyProfilesQueue, "--payload", "{}")
	require.Equal(t, cli.ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, `QUANTUM_FLOW_BROADCAST_RETENTION="a week": not a duration`)
}
