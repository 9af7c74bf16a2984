package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/internal/pgtest"
)

// Test secrets: none may appear in any output, log line or error.
const (
	secretPGPassword   = "PgPw-Secret-4242"
	secretNATSPassword = "NatsPw-Secret-7777"
	secretAdminToken   = "AdminTok-Secret-31337"
	secretNkeySeed     = "SUANKEYSEEDSECRET5555"
	secretCreds        = "CREDS-JWT-SECRET-6666"
)

var secrets = []string{secretPGPassword, secretNATSPassword, secretAdminToken, secretNkeySeed, secretCreds}

// secretCommands are the tool's commands, each run with the test secrets
// in its URL and environment; the long-running ones (consume, serve) end
// with their context.
var secretCommands = [][]string{
	{"init"}, {"queues"}, {"stats", "proposals_for_consensus_queue"}, {"pending", "proposals_for_consensus_queue"},
	{"publish", "proposals_for_consensus_queue", "--payload", `{"a":1}`},
	{"consume", "proposals_for_consensus_queue", "--max", "1"},
	{"instances"}, {"dlq", "list"}, {"dlq", "retry", "--all"}, {"dlq", "purge", "--all"},
	{"config", "show"}, {"config", "check"}, {"version"},
	{"serve", "--http", "127.0.0.1:0"},
	{"stats", "bad queue!"}, {"publish", "proposals_for_consensus_queue", "--payload", "not json"},
}

// TestSecretsNeverShown runs every command against PostgreSQL and NATS
// reached with a password, with the admin token in the environment, at
// debug level in text and JSON, and against NATS URLs naming nkey and
// creds files that hold secrets: no output, log line or error may show
// any of them.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// pgtest's server trusts local connections: the password is sent and
	// ignored, so every command runs its success path with it in the URL.
	pg, err := url.Parse(pgtest.Database(t))
	require.NoError(t, err)
	pg.User = url.UserPassword(pg.User.Username(), secretPGPassword)

	srv, err := embedded.Start(ctx, embedded.Options{Configure: func(o *server.Options) {
		o.Username, o.Password = "qfuser", secretNATSPassword
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	nu := fmt.Sprintf("nats://qfuser:%s@127.0.0.1:%d?replicas=1&publish_timeout=2s", secretNATSPassword, srv.Port())

	dir := t.TempDir()
	nkey := filepath.Join(dir, "app.nk")
	creds := filepath.Join(dir, "app.creds")
	require.NoError(t, os.WriteFile(nkey, []byte(secretNkeySeed+"\n"), 0o600))
	require.NoError(t, os.WriteFile(creds, []byte("-----BEGIN NATS USER JWT-----\n"+secretCreds+"\n------END NATS USER JWT------\n"), 0o600))

	urls := map[string]string{
		"postgres":   pg.String(),
		"nats":       nu,
		"nats nkey":  fmt.Sprintf("nats://127.0.0.1:%d?nkey=%s&publish_timeout=1s", srv.Port(), nkey),
		"nats creds": fmt.Sprintf("nats://127.0.0.1:%d?creds=%s&publish_timeout=1s", srv.Port(), creds),
	}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			for _, cmd := range secretCommands {
				for _, format := range []string{"text", "json"} {
					args := append([]string{"--log-level", "debug", "--log-format", format}, cmd...)
					if format == "json" {
						args = append(args, "--json")
					}
					r := runWithSecrets(t, u, args)
					if cmd[0] == "init" && !strings.Contains(name, " ") {
						// The secrets travel on a path that works.
						require.Zero(t, r.code, "%s: init: %s", name, r.stderr)
					}
					for _, s := range secrets {
						require.NotContains(t, r.stdout+r.stderr, s, "%s: quantumflow %s", name, strings.Join(args, " "))
					}
				}
			}
		})
	}
}

// runWithSecrets runs the tool with url and the admin token in its
// environment, for at most 3 seconds.
func runWithSecrets(t *testing.T, u string, args []string) result {
	t.Helper()
	b := &bundle{env: map[string]string{
		"QUANTUM_FLOW_DATABASE_URL": u,
		"QUANTUM_FLOW_ADMIN_TOKEN":  secretAdminToken,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return b.runCtx(t, ctx, &bytes.Buffer{}, args...)
}
