package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

const readToken = "r3ad-only-token"

// readPaths are every read the read token guards.
var readPaths = []string{
	"/api/queues", "/api/queues/q1", "/api/queues/q1/pending", "/api/instances", "/api/dlq", "/api/dlq?error_contains=x",
	"/api/history", "/api/audit", "/metrics",
}

// TestReadTokenGuardsReads: with a read token set, every read needs it or
// the admin token (401 without, 403 with another), the health checks and
// the dashboard's files stay open, and /api/queues says which role the
// token has. Without a read token reads are open.
func TestReadTokenGuardsReads(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token, ReadToken: readToken})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	for _, p := range readPaths {
		r := do(t, b.server, "GET", p, "", nil)
		require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", p, r.body)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", p)
		require.Contains(t, string(r.body), httpapi.ReadTokenEnv, p)
		for _, wrong := range []string{"Bearer nope", "Basic " + readToken, "Bearer " + readToken + "x"} {
			r = do(t, b.server, "GET", p, wrong, nil)
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.status, "%s %s: %s", p, wrong, r.body)
		}
		for _, tok := range []string{readToken, token} {
			r = do(t, b.server, "GET", p, bearer(tok), nil)
			require.Equal(t, http.StatusOK, r.status, "%s: %s", p, r.body)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/", "/static/app.js", "/static/charts.js", "/static/style.css"} {
		r := do(t, b.server, "GET", p, "", nil)
		require.Equal(t, http.StatusOK, r.status, p)
	}
	var ov httpapi.Overview
	for tok, role := range map[string]string{readToken: httpapi.RoleRead, token: httpapi.RoleAdmin} {
		do(t, b.server, "GET", "/api/queues", bearer(tok), nil).json(t, &ov)
		require.Equal(t, role, ov.Role)
		require.True(t, ov.ReadTokenRequired)
		require.True(t, ov.AdminEnabled)
	}

	open := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, open.backend, "q1", `{"x":1}`)
	for _, p := range readPaths {
		require.Equal(t, http.StatusOK, do(t, open.server, "GET", p, "", nil).status, p)
	}
	do(t, open.server, "GET", "/api/queues", "", nil).json(t, &ov)
	require.Empty(t, ov.Role)
	require.False(t, ov.ReadTokenRequired)
}

// TestReadTokenCannotMutate: the read token is refused (403, saying so)
// by every mutation, which changes nothing and is not audited.
func TestReadTokenCannotMutate(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token, ReadToken: readToken})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	for _, action := range []string{"retry", "purge"} {
		r := do(t, b.server, "POST", "/api/dlq/"+action, bearer(readToken), map[string]any{"all": true})
		require.Equal(t, http.StatusForbidden, r.status, string(r.body))
		require.Contains(t, string(r.body), "read token cannot change anything")
	}
	st, err := b.backend.Stats(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters)
	audit, err := b.backend.Audit(context.Background(), 10)
	require.NoError(t, err)
	require.Empty(t, audit)
}

// TestMutationsAreAudited runs on every backend: each retry and purge
// over HTTP is in the audit log (newest first) with the admin role, the
// client's address, its action, queue, count and selection, stored before
// the answer; refused and invalid requests (nothing changed) are not.
func TestMutationsAreAudited(t *testing.T) {
	t.Parallel()
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			b := setupOn(t, kind, httpapi.Options{AdminToken: token})
			ctx := context.Background()
			ids := deadLetter(t, b.backend, "audit_q1", `{"n":1}`, `{"n":2}`)
			deadLetter(t, b.backend, "audit_q2", `{"n":3}`)

			// Refused or invalid: nothing changes, nothing is audited.
			require.Equal(t, http.StatusUnauthorized, do(t, b.server, "POST", "/api/dlq/purge", "", map[string]any{"all": true}).status)
			require.Equal(t, http.StatusForbidden, do(t, b.server, "POST", "/api/dlq/purge", bearer("x"), map[string]any{"all": true}).status)
			require.Equal(t, http.StatusBadRequest, do(t, b.server, "POST", "/api/dlq/purge", bearer(token), "{}").status)

			r := do(t, b.server, "POST", "/api/dlq/retry", bearer(token), map[string]any{"ids": []string{ids[0]}})
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			// Listed right after the answer: stored before it.
			var list httpapi.AuditList
			do(t, b.server, "GET", "/api/audit", "", nil).json(t, &list)
			require.Len(t, list.Entries, 1)
			r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"queue": "audit_q1", "error_contains": "EXPLODED"})
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"all": true})
			require.Equal(t, http.StatusOK, r.status, string(r.body))

			do(t, b.server, "GET", "/api/audit?limit=10", "", nil).json(t, &list)
			require.Len(t, list.Entries, 3)
			all, filtered, retry := list.Entries[0], list.Entries[1], list.Entries[2]
			for _, e := range list.Entries {
				require.Equal(t, httpapi.RoleAdmin, e.Role)
				require.True(t, strings.HasPrefix(e.Remote, "127.0.0.1:"), e.Remote)
				require.WithinDuration(t, time.Now(), e.At, time.Minute)
				require.Empty(t, e.Error)
			}
			require.Equal(t, pubsub.AuditEntry{Action: "dlq.retry", Count: 1, Detail: "ids=1"}, strip(retry))
			require.Equal(t, pubsub.AuditEntry{Action: "dlq.purge", Queue: "audit_q1", Count: 1, Detail: `error_contains="EXPLODED"`}, strip(filtered))
			require.Equal(t, pubsub.AuditEntry{Action: "dlq.purge", Count: 1, Detail: "all"}, strip(all))

			do(t, b.server, "GET", "/api/audit?limit=1", "", nil).json(t, &list)
			require.Len(t, list.Entries, 1)
			require.Equal(t, "all", list.Entries[0].Detail)
			left, err := b.backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
			require.NoError(t, err)
			require.Empty(t, left)
		})
	}
}

// strip keeps what an entry says about the mutation itself.
func strip(e pubsub.AuditEntry) pubsub.AuditEntry {
	return pubsub.AuditEntry{Action: e.Action, Queue: e.Queue, Count: e.Count, Detail: e.Detail, Error: e.Error}
}

// TestErrorFilter: error_contains (ignoring case) narrows the listed dead
// letters, and a retry or purge acts on exactly the matching set, within
// its queue when one is given.
func TestErrorFilter(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	ctx := context.Background()
	// deadLetter's error is "handler exploded: " + the payload.
	timeouts := deadLetter(t, b.backend, "f1", `{"e":"Timeout 1"}`, `{"e":"timeout 2"}`)
	deadLetter(t, b.backend, "f1", `{"e":"schema"}`)
	other := deadLetter(t, b.backend, "f2", `{"e":"timeout 3"}`)

	var list struct {
		DeadLetters []httpapi.MessageView `json:"dead_letters"`
	}
	do(t, b.server, "GET", "/api/dlq?error_contains=TIMEOUT", "", nil).json(t, &list)
	require.Len(t, list.DeadLetters, 3)
	do(t, b.server, "GET", "/api/dlq?queue=f1&error_contains=timeout&limit=1", "", nil).json(t, &list)
	require.Len(t, list.DeadLetters, 1)
	require.Contains(t, timeouts, list.DeadLetters[0].ID)

	var res map[string]int
	r := do(t, b.server, "POST", "/api/dlq/retry", bearer(token), map[string]any{"queue": "f1", "error_contains": "timeout"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &res)
	require.Equal(t, 2, res["retried"])
	pending, err := b.backend.ListPending(ctx, "f1", 10)
	require.NoError(t, err)
	require.ElementsMatch(t, timeouts, []string{pending[0].ID, pending[1].ID})
	st, err := b.backend.Stats(ctx, "f1")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters, "the schema error stays")
	st, err = b.backend.Stats(ctx, "f2")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters, "another queue's timeout stays")

	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"error_contains": "no such error"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &res)
	require.Equal(t, 0, res["purged"])
	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"error_contains": "timeout"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &res)
	require.Equal(t, 1, res["purged"])
	dls, err := b.backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.NotEqual(t, other[0], dls[0].ID)
	require.Contains(t, dls[0].Error, "schema")
}

// TestBadInputChangesNothing sends bad input to every endpoint of this
// issue: each is a 4xx with a JSON error naming what was wrong, and the
// dead letters and the audit log are as they were.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token, HistoryInterval: 20 * time.Millisecond})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	deadLetter(t, b.backend, "q2", `{"x":2}`)
	long := strings.Repeat("x", 1001)
	cases := []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"GET", "/api/audit?limit=0", nil, 400, "limit"},
		{"GET", "/api/audit?limit=many", nil, 400, "limit"},
		{"GET", "/api/audit?since=1", nil, 400, "unknown parameter"},
		{"GET", "/api/history?queue=bad;name", nil, 400, "query"},
		{"GET", "/api/history?queue=bad%20name", nil, 400, "queue"},
		{"GET", "/api/history?queue=never_seen", nil, 404, "never_seen"},
		{"GET", "/api/history?window=2h", nil, 400, "unknown parameter"},
		{"GET", "/api/dlq?error_contains=" + long, nil, 400, "error_contains"},
		{"GET", "/api/dlq?error_contains=a&error_contains=b", nil, 400, "more than once"},
		{"POST", "/api/dlq/retry", map[string]any{"error_contains": long}, 400, "error_contains"},
		{"POST", "/api/dlq/purge", map[string]any{"all": true, "error_contains": "x"}, 400, `"all" cannot be combined`},
		{"POST", "/api/dlq/purge", map[string]any{"ids": []string{""}}, 400, "empty message id"},
		{"POST", "/api/dlq/retry", map[string]any{"error_contains": 5}, 400, "error_contains"},
		{"POST", "/api/dlq/purge", map[string]any{"queue": "q1", "errors_contain": "x"}, 400, "unknown field"},
		{"POST", "/api/dlq/purge", `{"error_contains":"` + strings.Repeat("y", httpapi.MaxBodyBytes) + `"}`, 413, "1 MiB"},
		{"POST", "/api/audit", map[string]any{}, 405, "use GET"},
		{"DELETE", "/api/history", nil, 405, "use GET"},
	}
	for _, c := range cases {
		r := do(t, b.server, c.method, c.path, bearer(token), c.body)
		require.Equal(t, c.status, r.status, "%s %s: %s", c.method, c.path, r.body)
		require.Equal(t, "application/json", r.header.Get("Content-Type"), c.path)
		var e map[string]string
		r.json(t, &e)
		require.Contains(t, e["error"], c.want, "%s %s", c.method, c.path)
	}
	requireUnchanged(t, b.backend)
	audit, err := b.backend.Audit(context.Background(), 10)
	require.NoError(t, err)
	require.Empty(t, audit, "nothing changed, nothing audited")
}

// TestHistory: the handler samples the queues by itself (no request
// needed) and GET /api/history gives the depth and, where the backend
// counts them, in and out rates per second, of all queues or one.
func TestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{HistoryInterval: 20 * time.Millisecond})
	publish(t, b.backend, "h1", `1`, `2`)
	publish(t, b.backend, "h2", `3`)
	var h httpapi.History
	require.Eventually(t, func() bool {
		do(t, b.server, "GET", "/api/history?queue=h1", "", nil).json(t, &h)
		return len(h.Points) >= 3 && h.Points[len(h.Points)-1].Pending == 2
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "h1", h.Queue)
	require.Equal(t, 0.02, h.IntervalSeconds)
	require.Equal(t, 3600.0, h.WindowSeconds)
	require.Nil(t, h.Points[0].InPerSecond, "the first point has no rate")
	last := h.Points[len(h.Points)-1]
	require.NotNil(t, last.InPerSecond, "mem counts what is published")
	require.NotNil(t, last.OutPerSecond)
	for i := 1; i < len(h.Points); i++ {
		require.True(t, h.Points[i].At.After(h.Points[i-1].At), "oldest first")
	}

	publish(t, b.backend, "h2", `4`)
	require.Eventually(t, func() bool {
		h = httpapi.History{}
		do(t, b.server, "GET", "/api/history", "", nil).json(t, &h)
		return len(h.Points) > 0 && h.Points[len(h.Points)-1].Pending == 4
	}, 10*time.Second, 20*time.Millisecond, "all queues: 2 + 2")
	require.Empty(t, h.Queue)
	rates := 0.0
	for _, p := range h.Points {
		if p.InPerSecond != nil {
			rates += *p.InPerSecond
		}
	}
	require.Positive(t, rates, "a publish shows as a rate in")
}
