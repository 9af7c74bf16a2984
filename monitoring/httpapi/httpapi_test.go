package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})

	r := do(t, b.server, "GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)

	r = do(t, b.server, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var ready map[string]string
	r.json(t, &ready)
	require.Equal(t, "ready", ready["status"])

	// A closed backend is unreachable: not ready, still alive.
	require.NoError(t, b.backend.Close())
	r = do(t, b.server, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	r.json(t, &ready)
	require.Equal(t, "not ready", ready["status"])
	require.NotEmpty(t, ready["error"])
	require.Equal(t, http.StatusOK, do(t, b.server, "GET", "/healthz", "", nil).status)
}

func TestNoBackendIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := httpapiServer(t, httpapi.Options{})
	require.Equal(t, http.StatusServiceUnavailable, do(t, srv, "GET", "/readyz", "", nil).status)
	require.Equal(t, http.StatusServiceUnavailable, do(t, srv, "GET", "/api/queues", "", nil).status)
	require.Equal(t, http.StatusOK, do(t, srv, "GET", "/healthz", "", nil).status)
}

func TestQueuesAndPending(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})
	ctx := context.Background()
	require.NoError(t, b.backend.DeclareQueue(ctx, pubsub.QueueSpec{Name: "rollback_triggers_queue", Priority: pubsub.PriorityHigh, MaxRetries: 3}))
	ids := publish(t, b.backend, "proposals_for_consensus_queue", `{"proposal":1}`, `plain text`, "\xff\xfe")
	deadLetter(t, b.backend, "rollback_triggers_queue", `{"rollback":1}`)

	var ov httpapi.Overview
	r := do(t, b.server, "GET", "/api/queues", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &ov)
	require.Equal(t, b.backend.String(), ov.Backend)
	require.Len(t, ov.Queues, 2)
	require.Equal(t, "proposals_for_consensus_queue", ov.Queues[0].Name)
	require.Equal(t, int64(3), ov.Queues[0].Pending)
	require.Positive(t, ov.Queues[0].OldestPendingAge)
	require.Equal(t, "rollback_triggers_queue", ov.Queues[1].Name)
	require.Equal(t, pubsub.PriorityHigh, ov.Queues[1].Priority)
	require.Equal(t, int64(1), ov.Queues[1].DeadLetters)
	require.Equal(t, int64(1), ov.DeadLetters)
	require.Equal(t, 100, ov.Threshold)
	require.False(t, ov.Degraded)
	require.False(t, ov.AdminEnabled)

	var q httpapi.QueueView
	r = do(t, b.server, "GET", "/api/queues/proposals_for_consensus_queue", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.json(t, &q)
	require.Equal(t, int64(3), q.Pending)
	require.Equal(t, int64(3), q.Counters["published"])

	var pending struct {
		Queue    string                `json:"queue"`
		Messages []httpapi.MessageView `json:"messages"`
	}
	r = do(t, b.server, "GET", "/api/queues/proposals_for_consensus_queue/pending?limit=10", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.json(t, &pending)
	require.Len(t, pending.Messages, 3)
	require.Equal(t, ids[0], pending.Messages[0].ID)
	require.JSONEq(t, `{"proposal":1}`, string(pending.Messages[0].Payload))
	require.JSONEq(t, `"plain text"`, string(pending.Messages[1].Payload))
	require.Equal(t, []byte("\xff\xfe"), pending.Messages[2].PayloadBase64)

	require.Equal(t, http.StatusNotFound, do(t, b.server, "GET", "/api/queues/no_such_queue", "", nil).status)
	require.Equal(t, http.StatusNotFound, do(t, b.server, "GET", "/api/queues/no_such_queue/pending", "", nil).status)
	require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/queues/bad;name", "", nil).status)
	require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/queues/proposals_for_consensus_queue/pending?limit=0", "", nil).status)
	require.Equal(t, http.StatusNotFound, do(t, b.server, "GET", "/api/nothing", "", nil).status)
}

func TestDeadLettersRetryAndPurge(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	ctx := context.Background()
	ids := deadLetter(t, b.backend, "metrics_to_guardian_queue", `{"m":1}`, `{"m":2}`, `{"m":3}`)
	deadLetter(t, b.backend, "patterns_for_aggregator_queue", `{"p":1}`)

	var list struct {
		DeadLetters []httpapi.MessageView `json:"dead_letters"`
	}
	r := do(t, b.server, "GET", "/api/dlq?queue=metrics_to_guardian_queue", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.json(t, &list)
	require.Len(t, list.DeadLetters, 3)
	require.Contains(t, list.DeadLetters[0].Error, "handler exploded")
	require.Equal(t, "handle_test", list.DeadLetters[0].Handler)
	require.Equal(t, "centralcloud", list.DeadLetters[0].Service)

	// Retry one by id: it is back on its queue.
	var retried map[string]int
	r = do(t, b.server, "POST", "/api/dlq/retry", bearer(token), map[string]any{"ids": []string{ids[1]}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &retried)
	require.Equal(t, 1, retried["retried"])
	pending, err := b.backend.ListPending(ctx, "metrics_to_guardian_queue", 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.Equal(t, ids[1], pending[0].ID)

	// Purge one queue's dead letters; the other queue's stay.
	var purged map[string]int
	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"queue": "metrics_to_guardian_queue"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &purged)
	require.Equal(t, 2, purged["purged"])
	left, err := b.backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "patterns_for_aggregator_queue", left[0].Queue)

	// Retry everything needs saying so.
	r = do(t, b.server, "POST", "/api/dlq/retry", bearer(token), map[string]any{"all": true})
	require.Equal(t, http.StatusOK, r.status)
	r.json(t, &retried)
	require.Equal(t, 1, retried["retried"])
}

func TestSelectionMustBeExplicit(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, b.backend, "q1", `{}`)
	for name, body := range map[string]any{
		"Empty":        nil,
		"EmptyObject":  "{}",
		"AllAndQueue":  map[string]any{"all": true, "queue": "q1"},
		"UnknownField": map[string]any{"everything": true},
		"NotJSON":      "queue=q1",
	} {
		t.Run(name, func(t *testing.T) {
			for _, action := range []string{"retry", "purge"} {
				r := do(t, b.server, "POST", "/api/dlq/"+action, bearer(token), body)
				require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
			}
		})
	}
	st, err := b.backend.Stats(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters)
}

func TestMutationsNeedTheToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		configured string
		auth       string
		want       int
	}{
		{"NoHeader", token, "", http.StatusUnauthorized},
		{"NotBearer", token, "Basic " + token, http.StatusUnauthorized},
		{"EmptyBearer", token, "Bearer ", http.StatusUnauthorized},
		{"WrongToken", token, bearer("guess"), http.StatusForbidden},
		{"PrefixOfToken", token, bearer(token[:5]), http.StatusForbidden},
		{"TokenPlusMore", token, bearer(token + "x"), http.StatusForbidden},
		{"NoTokenConfigured", "", bearer(token), http.StatusForbidden},
		{"NoTokenConfiguredEmptyBearer", "", "Bearer ", http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, httpapi.Options{AdminToken: c.configured})
			deadLetter(t, b.backend, "q1", `{"x":1}`)
			for _, path := range []string{"/api/dlq/retry", "/api/dlq/purge"} {
				r := do(t, b.server, "POST", path, c.auth, map[string]any{"all": true})
				require.Equal(t, c.want, r.status, "%s: %s", path, r.body)
				require.NotContains(t, string(r.body), token)
				if c.want == http.StatusUnauthorized {
					require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
				}
			}
			st, err := b.backend.Stats(context.Background(), "q1")
			require.NoError(t, err)
			require.Equal(t, int64(1), st.DeadLetters, "a refused request changed nothing")
			require.Equal(t, int64(0), st.Pending)
		})
	}
}

func TestGetNeverMutates(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	ids := deadLetter(t, b.backend, "q1", `{"x":1}`, `{"x":2}`)
	publish(t, b.backend, "q1", `{"y":1}`)
	before, err := b.backend.Stats(context.Background(), "q1")
	require.NoError(t, err)

	paths := []string{
		"/", "/metrics", "/healthz", "/readyz", "/api/queues", "/api/queues/q1", "/api/queues/q1/pending",
		"/api/dlq", "/api/dlq?queue=q1",
		// The mutating paths, asked with GET, with the token and a
		// selection in the query string for good measure.
		"/api/dlq/retry", "/api/dlq/retry?all=true", "/api/dlq/retry?ids=" + ids[0],
		"/api/dlq/purge", "/api/dlq/purge?queue=q1",
	}
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD"} {
			r := do(t, b.server, m, p, bearer(token), nil)
			if strings.HasPrefix(p, "/api/dlq/") {
				require.Equal(t, http.StatusMethodNotAllowed, r.status, "%s %s", m, p)
			} else {
				require.Less(t, r.status, 400, "%s %s", m, p)
			}
		}
	}
	after, err := b.backend.Stats(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, before.Pending, after.Pending)
	require.Equal(t, before.DeadLetters, after.DeadLetters)
	require.Equal(t, int64(2), after.DeadLetters)
}

func TestDegradedAboveThreshold(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{DLQAlertThreshold: 2})
	deadLetter(t, b.backend, "q1", `1`, `2`)
	var ov httpapi.Overview
	do(t, b.server, "GET", "/api/queues", "", nil).json(t, &ov)
	require.False(t, ov.Degraded, "2 is not above a threshold of 2")
	deadLetter(t, b.backend, "q2", `3`)
	do(t, b.server, "GET", "/api/queues", "", nil).json(t, &ov)
	require.True(t, ov.Degraded)
	require.Equal(t, int64(3), ov.DeadLetters)
	require.Equal(t, 2, ov.Threshold)
}

func TestMetricsEndpointServesTheRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "quantumflow_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(7)
	b := setup(t, httpapi.Options{Registry: reg})
	r := do(t, b.server, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "quantumflow_test_total 7")
}

func TestDashboardIsServedWithStrictHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})
	r := do(t, b.server, "GET", "/", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, r.header.Get("Content-Type"), "text/html")
	require.Contains(t, string(r.body), "<title>QuantumFlow</title>")
	require.Contains(t, r.header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	for _, f := range []string{"/static/app.js", "/static/style.css"} {
		require.Equal(t, http.StatusOK, do(t, b.server, "GET", f, "", nil).status, f)
	}
	require.Equal(t, http.StatusNotFound, do(t, b.server, "GET", "/static/nope.js", "", nil).status)
}

// TestRatesFollowTraffic checks the per-second rates of GET /api/queues:
// absent until two observations a second apart exist, then the growth of
// the backend's counters and of the depth since the first observation.
func TestRatesFollowTraffic(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})
	publish(t, b.backend, "q1", `1`)
	var ov httpapi.Overview
	do(t, b.server, "GET", "/api/queues", "", nil).json(t, &ov)
	require.Nil(t, ov.Queues[0].Rates, "one observation has no rate")

	publish(t, b.backend, "q1", `2`, `3`, `4`)
	require.Eventually(t, func() bool {
		do(t, b.server, "GET", "/api/queues", "", nil).json(t, &ov)
		return ov.Queues[0].Rates != nil
	}, 10*time.Second, 100*time.Millisecond)
	r := ov.Queues[0].Rates
	// 3 messages over a little more than a second.
	require.Greater(t, r["published"], 0.0)
	require.LessOrEqual(t, r["published"], 3.0)
	require.InDelta(t, r["published"], r["pending"], 0.011, "nothing consumed: the depth grew as fast")
	require.Equal(t, 0.0, r["acked"])
}
