package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// The secrets of the hostile-input table: the backend's password is in
// every run's URL and the admin token in its environment; neither may
// show in any output.
const (
	hostilePassword = "s3cr3t-PW"
	hostileToken    = "tok-s3cr3t-HOSTILE"
)

// hostileCase is one row of the hostile-input table: the tool run with
// one bad input must exit 2 naming what is wrong (want), print nothing on
// stdout, write nothing to the backend and show no secret.
type hostileCase struct {
	name string
	// args is the command line; nil is publishProposal.
	args []string
	// env is added to the environment, which holds the backend's URL
	// (QUANTUM_FLOW_DATABASE_URL) and the admin token.
	env map[string]string
	// yaml, when set, is written to a file given with --config.
	yaml string
	// want is what the error must name.
	want string
}

// A valid proposal, and publish commands that are one bad input away
// from publishing it.
const proposal = `{"id":"p1","instance":"s1","change":"tune cache","risk":0.2}`

var (
	publishProposal = []string{"publish", topology.ProposalsQueue, "--payload", proposal}
	publishRaw      = []string{"publish", "--raw", "--payload", `{}`}
)

// with returns base followed by more, leaving base as it is.
func with(base []string, more ...string) []string { return append(slices.Clone(base), more...) }

// yamlProducer is a configuration file setting key of singularity's
// proposals producer to v.
func yamlProducer(key, v string) string {
	return "singularity:\n  producers:\n    proposals_for_consensus:\n      " + key + ": " + v + "\n"
}

// hostileFlags are bad flags and arguments, queue names and ids first
// among them.
var hostileFlags = []hostileCase{
	{name: "UnknownFlag", args: with(publishProposal, "--frob"), want: "unknown flag: --frob"},
	{name: "CountNotANumber", args: with(publishProposal, "--count", "x"), want: `invalid argument "x" for "--count"`},
	{name: "CountZero", args: with(publishProposal, "--count", "0"), want: "--count must be positive"},
	{name: "CountOverLimit", args: with(publishProposal, "--count", "100001"), want: "--count 100001: at most 100000"},
	{name: "UnknownPriority", args: with(publishProposal, "--priority", "urgent"), want: `--priority "urgent"`},
	{name: "DelayNotADuration", args: with(publishProposal, "--delay", "soon"), want: `--delay "soon"`},
	{name: "NegativeDelay", args: with(publishProposal, "--delay", "-5s"), want: `--delay "-5s"`},
	{name: "DelayAndAt", args: with(publishProposal, "--delay", "5s", "--at", "2030-01-01T00:00:00Z"), want: "--delay and --at"},
	{name: "AtNotATime", args: with(publishProposal, "--at", "tomorrow"), want: `--at "tomorrow"`},
	{name: "ZeroTTL", args: with(publishProposal, "--ttl", "0s"), want: `--ttl "0s"`},
	{name: "DedupKeyWithCount", args: with(publishProposal, "--dedup-key", "k1", "--count", "2"), want: "--dedup-key with --count 2"},
	{name: "DedupKeyControlCharacter", args: with(publishProposal, "--dedup-key", "k\n1"), want: `--dedup-key "k\n1"`},
	{name: "ToOnWorkQueue", args: with(publishProposal, "--to", "s1"), want: "drop --to"},
	{name: "AddressedWithoutTo", args: []string{"publish", topology.RollbackQueue, "--payload", `{"id":"rb1","instance":"s1","reason":"x"}`}, want: "--to INSTANCE"},
	{name: "ToPathTraversal", args: []string{"publish", topology.RollbackQueue, "--payload", `{}`, "--raw", "--to", "../x"}, want: `--to "../x"`},
	{name: "InstancePathTraversal", args: with(publishProposal, "--instance", "../../etc"), want: "../../etc"},
	{name: "MissingPayload", args: []string{"publish", topology.ProposalsQueue}, want: "publish needs --payload"},
	{name: "ExtraArgument", args: with(publishProposal, "extra"), want: "takes 1 argument(s) QUEUE, got 2"},
	{name: "QueuePathTraversal", args: with(publishRaw, "../../etc/passwd"), want: `invalid queue name "../../etc/passwd"`},
	{name: "QueueEscapedTraversal", args: with(publishRaw, "%2e%2e%2fx"), want: `invalid queue name "%2e%2e%2fx"`},
	{name: "QueueSQLInjection", args: with(publishRaw, "q'; DROP TABLE x;--"), want: `invalid queue name "q'; DROP TABLE x;--"`},
	{name: "QueueNUL", args: with(publishRaw, "q\x00x"), want: `invalid queue name "q\x00x"`},
	{name: "QueueUnicode", args: with(publishRaw, "quéue"), want: `invalid queue name "quéue"`},
	{name: "QueueEmpty", args: with(publishRaw, ""), want: `invalid queue name ""`},
	{name: "QueueTooLong", args: with(publishRaw, strings.Repeat("q", 201)), want: "invalid queue name"},
	{name: "QueueDotDot", args: with(publishRaw, ".."), want: `invalid queue name ".."`},
	{name: "UnknownQueue", args: with(publishRaw, "no_such_queue"), want: `queue not found: "no_such_queue"`},
	{name: "DLQPurgeWithoutSelector", args: []string{"dlq", "purge"}, want: "needs a selector"},
	{name: "DLQRetryAllAndQueue", args: []string{"dlq", "retry", "--all", "--queue", topology.ProposalsQueue}, want: "--all cannot be combined"},
	{name: "DLQPurgeQueueSQLInjection", args: []string{"dlq", "purge", "--queue", "x' OR 1=1--"}, want: `invalid queue name "x' OR 1=1--"`},
	{name: "PauseQueueTraversal", args: []string{"pause", "../" + topology.ProposalsQueue}, want: "invalid queue name"},
	{name: "PauseDotDot", args: []string{"pause", ".."}, want: `invalid queue name ".."`},
	{name: "DLQPurgeIDWithNUL", args: []string{"dlq", "purge", "--id", "a\x00b"}, want: `--id: pubsub: invalid argument: message id "a\x00b"`},
	{name: "DLQRetryIDNotUTF8", args: []string{"dlq", "retry", "--id", "\xff\xfe"}, want: `--id: pubsub: invalid argument: message id "\xff\xfe"`},
	{name: "DLQRetryEmptyID", args: []string{"dlq", "retry", "--id", "a1,,b1"}, want: "--id: pubsub: invalid argument: empty message id"},
	{name: "ShowIDNotUTF8", args: []string{"show", "\xff"}, want: `message id "\xff"`},
	{name: "DeleteIDWithNUL", args: []string{"delete", "a\x00b", "--queue", topology.ProposalsQueue}, want: `message id "a\x00b"`},
	{name: "ServePortOutOfRange", args: []string{"serve", "--http", "127.0.0.1:99999"}, want: `--http "127.0.0.1:99999"`},
	{name: "ConsumeWorkersZero", args: []string{"consume", topology.ProposalsQueue, "--workers", "0", "--max", "1"}, want: "--workers must be positive"},
}

// hostileEnv are bad QUANTUM_FLOW_* variables, publishProposal run with
// each.
var hostileEnv = []hostileCase{
	{name: "WorkersNotANumber", env: map[string]string{"QUANTUM_FLOW_CONSENSUS_WORKERS": "many"}, want: `QUANTUM_FLOW_CONSENSUS_WORKERS="many"`},
	{name: "WorkersNegative", env: map[string]string{"QUANTUM_FLOW_PROPOSALS_WORKERS": "-3"}, want: "QUANTUM_FLOW_PROPOSALS_WORKERS"},
	{name: "WorkersOverLimit", env: map[string]string{"QUANTUM_FLOW_PROPOSALS_WORKERS": "1000000"}, want: "QUANTUM_FLOW_PROPOSALS_WORKERS"},
	{name: "MaxRetriesNegative", env: map[string]string{"QUANTUM_FLOW_MAX_RETRIES": "-1"}, want: "QUANTUM_FLOW_MAX_RETRIES"},
	{name: "RetryDelayNotANumber", env: map[string]string{"QUANTUM_FLOW_RETRY_DELAY_MS": "1.5s"}, want: "QUANTUM_FLOW_RETRY_DELAY_MS"},
	{name: "InstanceTTLNotADuration", env: map[string]string{"QUANTUM_FLOW_INSTANCE_TTL": "forever"}, want: "QUANTUM_FLOW_INSTANCE_TTL"},
	{name: "BroadcastRetentionNegative", env: map[string]string{"QUANTUM_FLOW_BROADCAST_RETENTION": "-1h"}, want: "QUANTUM_FLOW_BROADCAST_RETENTION"},
	{name: "UnknownProfile", env: map[string]string{"QUANTUM_FLOW_PROFILE": "huge"}, want: "QUANTUM_FLOW_PROFILE"},
	{name: "InstanceIDTraversal", env: map[string]string{"QUANTUM_FLOW_INSTANCE_ID": "../x"}, want: "QUANTUM_FLOW_INSTANCE_ID"},
	{name: "InstanceIDNUL", env: map[string]string{"QUANTUM_FLOW_INSTANCE_ID": "s1\x00"}, want: "QUANTUM_FLOW_INSTANCE_ID"},
}

// hostileYAML are bad configuration files, publishProposal run with each.
var hostileYAML = []hostileCase{
	{name: "UnknownKey", yaml: "singularity:\n  databse_url: x\n", want: "singularity.databse_url: unknown key"},
	{name: "UnknownService", yaml: "singularty: {}\n", want: "singularty: unknown key"},
	{name: "WorkersNotANumber", yaml: yamlProducer("workers", "many"), want: "workers"},
	{name: "WorkersNegative", yaml: yamlProducer("workers", "-1"), want: "workers"},
	{name: "MaxRetriesNegative", yaml: yamlProducer("max_retries", "-2"), want: "max_retries"},
	{name: "TTLNotADuration", yaml: yamlProducer("message_ttl", "forever"), want: "message_ttl"},
	{name: "InstanceTTLNotADuration", yaml: "singularity:\n  instance_ttl: 3 fortnights\n", want: "instance_ttl"},
	{name: "QueueNameTraversal", yaml: yamlProducer("queue_name", "../../etc/passwd"), want: "../../etc/passwd"},
	{name: "QueueNameSQLInjection", yaml: yamlProducer("queue_name", `"q'; DROP TABLE x;--"`), want: "DROP TABLE"},
	{name: "UnknownDelivery", yaml: yamlProducer("delivery", "sometimes"), want: "delivery"},
	{name: "ListForMapping", yaml: "singularity: [a, b]\n", want: "singularity: expected a service section"},
	{name: "NotYAML", yaml: "singularity: [\n", want: ".yaml:"},
	{name: "TwoDocuments", yaml: "profile: small\n---\nprofile: large\n", want: "more than one YAML document"},
	{name: "DuplicateKey", yaml: "singularity: {}\nsingularity: {}\n", want: "duplicate key"},
	{name: "NULInValue", yaml: "singularity:\n  instance_id: \"s1\\0\"\n", want: "instance_id"},
}

// hostileURLs are backend URLs, each with the password, given every way
// the tool reads one.
var hostileURLs = []hostileCase{
	{name: "PostgresBadSSLMode", args: with(publishProposal, "--url", "postgres://qf:"+hostilePassword+"@127.0.0.1/x?sslmode=bogus"), want: "sslmode"},
	{name: "PostgresUnknownParameter", args: with(publishProposal, "--url", "postgres://qf:"+hostilePassword+"@127.0.0.1/x?frobnicate=1"), want: "frobnicate"},
	{name: "PostgresBadPort", args: with(publishProposal, "--url", "postgres://qf:"+hostilePassword+"@127.0.0.1:notaport/x"), want: "--url: not a valid URL"},
	{name: "PostgresPasswordParameter", args: with(publishProposal, "--url", "postgres://qf@127.0.0.1/x?password="+hostilePassword+"&lease=0s"), want: "lease"},
	{name: "PostgresSchemaSQLInjection", args: with(publishProposal, "--url", "postgres://qf:"+hostilePassword+"@127.0.0.1/x?schema=x%3BDROP%20TABLE%20y"), want: "schema"},
	{name: "NATSUnknownParameter", args: with(publishProposal, "--url", "nats://qf:"+hostilePassword+"@127.0.0.1:1?frob=1"), want: "frob"},
	{name: "NATSBadTimeout", args: with(publishProposal, "--url", "nats://qf:"+hostilePassword+"@127.0.0.1:1?publish_timeout=soon"), want: "publish_timeout"},
	{name: "NATSBadReplicas", args: with(publishProposal, "--url", "nats://qf:"+hostilePassword+"@127.0.0.1:1?replicas=many"), want: "replicas"},
	{name: "UnknownScheme", args: with(publishProposal, "--url", "nosuch://qf:"+hostilePassword+"@h/x"), want: "nosuch"},
	{name: "Unparseable", args: with(publishProposal, "--url", "postgres://q f:"+hostilePassword+"@h/x"), want: "--url: not a valid URL"},
	{name: "MessagingURLInEnvironment", args: publishProposal, env: map[string]string{"QUANTUM_FLOW_MESSAGING_URL": "postgres://qf:" + hostilePassword + "@127.0.0.1/x?sslmode=bogus"}, want: "sslmode"},
	{name: "MessagingURLInFile", args: publishProposal, yaml: "singularity:\n  messaging_url: 'nats://qf:" + hostilePassword + "@127.0.0.1:1?frob=1'\n", want: "frob"},
}

// hostilePayloads are payloads a queue refuses: not JSON, against its
// contract, over the backend's limit.
var hostilePayloads = []hostileCase{
	{name: "NotJSON", args: []string{"publish", topology.ProposalsQueue, "--payload", "{not json"}, want: "--payload is not valid JSON"},
	{name: "Empty", args: []string{"publish", topology.ProposalsQueue, "--payload", ""}, want: "--payload is not valid JSON"},
	{name: "RawNUL", args: []string{"publish", topology.ProposalsQueue, "--payload", "{\"id\":\"p\x00\"}"}, want: "--payload is not valid JSON"},
	{name: "MissingField", args: []string{"publish", topology.ProposalsQueue, "--payload", `{"id":"p1","instance":"s1","risk":0.2}`}, want: `field "change": is required`},
	{name: "WrongType", args: []string{"publish", topology.ProposalsQueue, "--payload", `{"id":"p1","instance":"s1","change":"x","risk":"high"}`}, want: `field "risk"`},
	{name: "OutOfRange", args: []string{"publish", topology.ProposalsQueue, "--payload", `{"id":"p1","instance":"s1","change":"x","risk":7}`}, want: `field "risk"`},
	{name: "SchemaVersionTooNew", args: []string{"publish", topology.ProposalsQueue, "--payload", `{"schema_version":99,"id":"p1","instance":"s1","change":"x","risk":0.2}`}, want: "schema_version"},
	{name: "OverTheLimit", args: []string{"publish", "--raw", topology.ProposalsQueue, "--payload", `"` + strings.Repeat("x", 1<<20) + `"`}, want: "over the backend's limit of"},
}

// hostileMetadata are --metadata entries no backend stores or that
// misstate what QuantumFlow reads.
var hostileMetadata = []hostileCase{
	{name: "NULInValue", args: with(publishProposal, "--metadata", "source=a\x00b"), want: `metadata "source"`},
	{name: "KeyNotUTF8", args: with(publishProposal, "--metadata", "\xff=v"), want: "metadata"},
	{name: "PriorityNotAnInteger", args: with(publishProposal, "--metadata", "quantumflow_priority=high"), want: "quantumflow_priority"},
	{name: "DeliverAtNotATime", args: with(publishProposal, "--metadata", "quantumflow_deliver_at=tomorrow"), want: "quantumflow_deliver_at"},
	{name: "ExpiresAtNotATime", args: with(publishProposal, "--metadata", "quantumflow_expires_at=never"), want: "quantumflow_expires_at"},
	{name: "EmptyDedupKey", args: with(publishProposal, "--metadata", "quantumflow_dedup_key="), want: "quantumflow_dedup_key"},
	{name: "SchemaOfAnotherContract", args: with(publishProposal, "--metadata", "quantumflow_schema=quantumflow.safety_profile/v1"), want: "quantumflow_schema"},
	{name: "OriginNotAnInstance", args: with(publishProposal, "--metadata", "quantumflow_origin=../x"), want: `quantumflow_origin="../x" is not an instance id`},
	{name: "RecipientNotAnInstance", args: with(publishProposal, "--metadata", "quantumflow_to=a b"), want: `quantumflow_to="a b" is not an instance id`},
	{name: "OnAnInstanceQueue", args: []string{"publish", topology.RollbackQueue, "--to", "s9", "--payload", `{"id":"rb1","instance":"s9","reason":"x"}`, "--metadata", "quantumflow_priority=x"}, want: "quantumflow_priority"},
	{name: "OnABroadcastCopy", args: []string{"publish", topology.SafetyProfilesQueue, "--to", "s8", "--payload", `{"id":"sp1","version":3,"max_risk":0.5}`, "--metadata", "quantumflow_deliver_at=x"}, want: "quantumflow_deliver_at"},
	{name: "ContentTypeNotJSON", args: with(publishProposal, "--metadata", "quantumflow_content_type=text/plain"), want: "quantumflow_content_type"},
}

// hostileTable is the table by category.
var hostileTable = []struct {
	category string
	cases    []hostileCase
}{
	{"Flags", hostileFlags},
	{"Env", hostileEnv},
	{"YAML", hostileYAML},
	{"URL", hostileURLs},
	{"Payload", hostilePayloads},
	{"Metadata", hostileMetadata},
}

// TestHostileInput runs the hostile-input table on PostgreSQL and NATS
// (issue #15): each bad input exits 2 naming what is wrong, prints
// nothing on stdout, writes nothing (every queue's figures, the
// instances and the audit log are as before) and shows neither the
// backend's password nor the admin token, in text and in JSON.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"postgres", "nats"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := hostileSetup(t, kind)
			for _, cat := range hostileTable {
				for _, c := range cat.cases {
					t.Run(cat.category+"/"+c.name, func(t *testing.T) { h.check(t, c) })
				}
			}
		})
	}
}

// hostileBundle is a backend holding the topology and one message, and
// the tool's environment reaching it with a password.
type hostileBundle struct {
	*bundle
	backend *pubsub.Backend
}

func hostileSetup(t *testing.T, kind string) *hostileBundle {
	t.Helper()
	ctx := context.Background()
	var raw string
	switch kind {
	case "postgres":
		// pgtest's server trusts local connections: the password is sent
		// and ignored.
		u, err := url.Parse(pgtest.Database(t))
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), hostilePassword)
		raw = u.String()
	case "nats":
		srv, err := embedded.Start(ctx, embedded.Options{Configure: func(o *server.Options) {
			o.Username, o.Password = "qf", hostilePassword
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		raw = fmt.Sprintf("nats://qf:%s@127.0.0.1:%d?replicas=1", hostilePassword, srv.Port())
	}
	h := &hostileBundle{bundle: &bundle{env: map[string]string{
		"QUANTUM_FLOW_DATABASE_URL": raw,
		"QUANTUM_FLOW_ADMIN_TOKEN":  hostileToken,
	}}}
	r := h.run(t, "init")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = h.run(t, publishProposal...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	b, err := pubsub.Open(ctx, raw)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	h.backend = b
	return h
}

// check runs c, in text and in JSON, and requires exit 2, an error
// naming c.want, nothing on stdout, no secret shown and the backend's
// contents unchanged.
func (h *hostileBundle) check(t *testing.T, c hostileCase) {
	env := maps.Clone(h.env)
	maps.Copy(env, c.env)
	b := &bundle{env: env}
	args := slices.Clone(c.args)
	if args == nil {
		args = publishProposal
	}
	if c.yaml != "" {
		path := filepath.Join(t.TempDir(), "qf.yaml")
		require.NoError(t, os.WriteFile(path, []byte(c.yaml), 0o600))
		args = append([]string{"--config", path}, args...)
	}
	for _, format := range []string{"text", "json"} {
		a := args
		if format == "json" {
			a = append([]string{"--json"}, args...)
		}
		before := testutil.Contents(t, h.backend)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r := b.runCtx(t, ctx, nil, a...)
		cancel()
		require.Equal(t, cli.ExitUsage, r.code, "%s: stderr: %s", format, r.stderr)
		require.Empty(t, r.stdout, format)
		require.Contains(t, errorOf(t, r, format), c.want, format)
		for _, s := range []string{hostilePassword, hostileToken} {
			require.NotContains(t, r.stdout+r.stderr, s, "%s: a secret is shown", format)
		}
		require.Equal(t, before, testutil.Contents(t, h.backend), "%s: nothing is written", format)
	}
}

// errorOf returns the error the tool printed: stderr, which must begin
// "Error: ", or its last JSON line's "error" (whose "exit" must be 2).
func errorOf(t *testing.T, r result, format string) string {
	t.Helper()
	if format == "text" {
		require.True(t, strings.HasPrefix(r.stderr, "Error: "), r.stderr)
		return r.stderr
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	var e struct {
		Error string `json:"error"`
		Exit  int    `json:"exit"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &e), r.stderr)
	require.Equal(t, cli.ExitUsage, e.Exit)
	return e.Error
}
