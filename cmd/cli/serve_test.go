package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
)

// serving is a `quantumflow serve` running in the test.
type serving struct {
	url    string
	stderr *testutil.SyncBuffer
	client *http.Client
	stop   func() int
}

// startServe runs `quantumflow serve --json ARGS...` until the test ends,
// and returns once it listens.
func startServe(t *testing.T, env map[string]string, args ...string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"serve", "--json"}, args...), cli.Env{
			Stdout: pw, Stderr: stderr,
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
		_ = pw.Close()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	var first map[string]any
	select {
	case l := <-lines:
		require.NoError(t, json.Unmarshal([]byte(l), &first), l)
	case code := <-done:
		t.Fatalf("serve exited with %d before listening: %s", code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start: %s", stderr.String())
	}
	s := &serving{
		url:    strings.TrimSuffix(first["listening"].(string), "/"),
		stderr: stderr,
		// No keep-alive: no idle connection outlives the test (goleak).
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second},
	}
	var once sync.Once
	code := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Error("serve did not stop")
			}
		})
		return code
	}
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *serving) do(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := s.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// deadLetterVia has one message of queue dead-lettered by a real
// subscription, as the poison middleware would.
func deadLetterVia(t *testing.T, b *pubsub.Backend, queue, payload string) string {
	t.Helper()
	msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
	require.NoError(t, b.Publisher().Publish(queue, msg))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	select {
	case got := <-ch:
		pubsub.DeliveryOf(got).MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom", Handler: "h", Service: "s"})
		got.Ack()
	case <-ctx.Done():
		t.Fatal("no message to dead-letter")
	}
	// Settlements are asynchronous: the dead letter is there once listed
	// (a command run right after the ack once found none).
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, queue)
		return err == nil && st.DeadLetters > before.DeadLetters
	}, 10*time.Second, 5*time.Millisecond, "the dead letter is stored")
	return msg.UUID
}

// TestServe runs the HTTP surface against a mem backend the test shares:
// health, the admin API with and without the token, the polled metrics,
// the DLQ alert in the log, and a clean stop.
func TestServe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const token = "serve-test-token"
	env := map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url, "QUANTUM_FLOW_ADMIN_TOKEN": token}
	id := deadLetterVia(t, b.backend, "consensus_results_queue", `{"approved":true}`)
	deadLetterVia(t, b.backend, "rollback_triggers_queue", `{"rollback":1}`)

	s := startServe(t, env, "--http", ":0", "--poll-interval", "20ms", "--dlq-alert-threshold", "1", "--log-level", "info")
	require.True(t, strings.HasPrefix(s.url, "http://127.0.0.1:"), "an address without a host binds loopback: %s", s.url)

	code, body := s.do(t, "GET", "/healthz", "", "")
	require.Equal(t, http.StatusOK, code, body)
	code, body = s.do(t, "GET", "/readyz", "", "")
	require.Equal(t, http.StatusOK, code, body)
	code, body = s.do(t, "GET", "/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "QuantumFlow")

	code, body = s.do(t, "GET", "/api/queues", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"degraded": true`)

	// Metrics from the poller, and the alert in the log.
	require.Eventually(t, func() bool {
		_, m := s.do(t, "GET", "/metrics", "", "")
		return strings.Contains(m, `quantumflow_queue_dead_letters{backend="mem",queue="consensus_results_queue"} 1`) &&
			strings.Contains(m, `quantumflow_dead_letters_alert{backend="mem"} 1`)
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, s.stderr.String(), "dead letters above alert threshold")

	// Mutations: refused without or with a wrong token, done with it.
	sel := `{"ids":["` + id + `"]}`
	code, _ = s.do(t, "POST", "/api/dlq/retry", "", sel)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = s.do(t, "POST", "/api/dlq/retry", "Bearer wrong", sel)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = s.do(t, "GET", "/api/dlq/retry", "Bearer "+token, "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	st, err := b.backend.Stats(ctx, "consensus_results_queue")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters)
	code, body = s.do(t, "POST", "/api/dlq/retry", "Bearer "+token, sel)
	require.Equal(t, http.StatusOK, code, body)
	st, err = b.backend.Stats(ctx, "consensus_results_queue")
	require.NoError(t, err)
	require.Equal(t, int64(0), st.DeadLetters)
	require.Equal(t, int64(1), st.Pending)

	require.Eventually(t, func() bool {
		_, m := s.do(t, "GET", "/metrics", "", "")
		return strings.Contains(m, `quantumflow_queue_pending_messages{backend="mem",queue="consensus_results_queue"} 1`) &&
			strings.Contains(m, `quantumflow_dead_letters_alert{backend="mem"} 0`)
	}, 10*time.Second, 20*time.Millisecond)
	require.NotContains(t, s.stderr.String(), token, "the token is never logged")

	require.Equal(t, cli.ExitOK, s.stop())
}

func TestServeWithoutTokenRefusesMutations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deadLetterVia(t, b.backend, "q1", `{}`)
	s := startServe(t, map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url}, "--http", "127.0.0.1:0")
	code, body := s.do(t, "POST", "/api/dlq/purge", "Bearer anything", `{"all":true}`)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "QUANTUM_FLOW_ADMIN_TOKEN")
	st, err := b.backend.Stats(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters)
	require.Contains(t, s.stderr.String(), "retry and purge are disabled")
	require.Equal(t, cli.ExitOK, s.stop())
}

func TestServeUsageErrors(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"BadAddress":   {[]string{"serve", "--url", "mem://", "--http", "nonsense"}, `--http "nonsense": want HOST:PORT`},
		"BadThreshold": {[]string{"serve", "--url", "mem://", "--dlq-alert-threshold", "0"}, "--dlq-alert-threshold must be positive"},
		"BadInterval":  {[]string{"serve", "--url", "mem://", "--poll-interval", "0s"}, "--poll-interval must be positive"},
		"ExtraArg":     {[]string{"serve", "now"}, `unknown command "now"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := noEnv().run(t, c.args...)
			require.Equal(t, cli.ExitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, c.want)
		})
	}
}

func TestServeListenFailureIsARuntimeError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := startServe(t, map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url}, "--http", "127.0.0.1:0")
	port := s.url[strings.LastIndex(s.url, ":")+1:]
	r := noEnv().run(t, "serve", "--url", b.url, "--http", "127.0.0.1:"+port)
	require.Equal(t, cli.ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "listen on 127.0.0.1:"+port)
}

func TestServeHelp(t *testing.T) {
	t.Parallel()
	r := noEnv().run(t, "serve", "--help")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "--http")
	require.Contains(t, r.stdout, "QUANTUM_FLOW_ADMIN_TOKEN")
}

// TestServeBackends runs serve against a PostgreSQL database (before and
// after `quantumflow init`) and an embedded NATS server: ready, listing,
// and a dead letter retried through the API.
func TestServeBackends(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		url := postgresURL(t)
		env := map[string]string{"QUANTUM_FLOW_DATABASE_URL": url, "QUANTUM_FLOW_ADMIN_TOKEN": "pg-token"}

		// Before init the storage is missing: alive, not ready.
		s := startServe(t, env, "--http", "127.0.0.1:0", "--poll-interval", "50ms")
		code, body := s.do(t, "GET", "/readyz", "", "")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, "quantumflow init")
		code, _ = s.do(t, "GET", "/healthz", "", "")
		require.Equal(t, http.StatusOK, code)

		r := (&bundle{env: env}).run(t, "init")
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		code, body = s.do(t, "GET", "/readyz", "", "")
		require.Equal(t, http.StatusOK, code, body)

		b, err := pubsub.Open(ctx, url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		serveRetriesADeadLetter(t, s, b, "pg-token")
		require.Equal(t, cli.ExitOK, s.stop())
	})
	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv, err := embedded.Start(ctx, embedded.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		env := map[string]string{"QUANTUM_FLOW_DATABASE_URL": srv.ClientURL(), "QUANTUM_FLOW_ADMIN_TOKEN": "nats-token"}
		r := (&bundle{env: env}).run(t, "init")
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		s := startServe(t, env, "--http", "127.0.0.1:0", "--poll-interval", "50ms")
		code, body := s.do(t, "GET", "/readyz", "", "")
		require.Equal(t, http.StatusOK, code, body)

		b, err := pubsub.Open(ctx, srv.ClientURL())
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		serveRetriesADeadLetter(t, s, b, "nats-token")
		require.Equal(t, cli.ExitOK, s.stop())
	})
}

func serveRetriesADeadLetter(t *testing.T, s *serving, b *pubsub.Backend, token string) {
	t.Helper()
	ctx := context.Background()
	id := deadLetterVia(t, b, "rollback_triggers_queue", `{"rollback":"r-1"}`)
	require.Eventually(t, func() bool {
		_, body := s.do(t, "GET", "/api/dlq", "", "")
		return strings.Contains(body, id)
	}, 20*time.Second, 20*time.Millisecond)
	code, body := s.do(t, "GET", "/api/queues/rollback_triggers_queue", "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"dead_letters": 1`)

	code, _ = s.do(t, "POST", "/api/dlq/retry", "", `{"ids":["`+id+`"]}`)
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = s.do(t, "POST", "/api/dlq/retry", "Bearer "+token, `{"ids":["`+id+`"]}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"retried": 1`)
	require.Eventually(t, func() bool {
		msgs, err := b.ListPending(ctx, "rollback_triggers_queue", 10)
		return err == nil && len(msgs) == 1 && msgs[0].ID == id
	}, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		_, m := s.do(t, "GET", "/metrics", "", "")
		return strings.Contains(m, `quantumflow_backend_up{backend="`+b.Scheme()+`"} 1`) &&
			strings.Contains(m, `quantumflow_queue_pending_messages{backend="`+b.Scheme()+`",queue="rollback_triggers_queue"} 1`)
	}, 20*time.Second, 20*time.Millisecond)
}

// TestServeInstanceTTLFromConfiguration checks that /api/instances and
// quantumflow_instances count an instance as gone by the configuration's
// instance_ttl.
func TestServeInstanceTTLFromConfiguration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	crashed := &pubsub.Instance{Service: "singularity", ID: "crashed", Host: "elsewhere", PID: 1, Nonce: "n"}
	require.NoError(t, b.backend.RegisterInstance(context.Background(), crashed, time.Hour))
	env := map[string]string{"QUANTUM_FLOW_DATABASE_URL": b.url, "QUANTUM_FLOW_INSTANCE_TTL": "50ms"}
	s := startServe(t, env, "--http", ":0", "--poll-interval", "20ms")

	require.Eventually(t, func() bool {
		_, body := s.do(t, "GET", "/api/instances", "", "")
		var list struct {
			TTLSeconds float64 `json:"ttl_seconds"`
			Instances  []struct {
				ID, State string
			} `json:"instances"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &list), body)
		require.InDelta(t, 0.05, list.TTLSeconds, 1e-9)
		return len(list.Instances) == 1 && list.Instances[0].State == "gone"
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		_, m := s.do(t, "GET", "/metrics", "", "")
		return strings.Contains(m, `quantumflow_instances{backend="mem",service="singularity",state="gone"} 1`)
	}, 10*time.Second, 20*time.Millisecond)
}
