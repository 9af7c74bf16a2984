package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// requireUnchanged fails unless q1 still holds its one dead letter and
// nothing pending: a refused request changed nothing.
func requireUnchanged(t *testing.T, b *pubsub.Backend) {
	t.Helper()
	st, err := b.Stats(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.DeadLetters, "a refused request changed nothing")
	require.Equal(t, int64(0), st.Pending)
}

// TestMutationBodyIsOneJSONDocument: a mutation runs on exactly one JSON
// document; anything after it but white space is refused with 400 before
// anything changes (issue 17, item 4: {"all":true}{"x":1} purged every
// dead letter).
func TestMutationBodyIsOneJSONDocument(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	for name, body := range map[string]string{
		"SecondObject":       `{"all":true}{"x":1}`,
		"SecondSelection":    `{"all":true} {"all":true}`,
		"SecondLine":         "{\"all\":true}\n{\"queue\":\"q1\"}",
		"Array":              `{"all":true}[]`,
		"Garbage":            `{"all":true}garbage`,
		"Number":             `{"all":true} 1`,
		"ClosingBrace":       `{"all":true}}`,
		"SecondDocumentHalf": `{"all":true}{"x":`,
	} {
		t.Run(name, func(t *testing.T) {
			for _, action := range []string{"retry", "purge"} {
				r := do(t, b.server, "POST", "/api/dlq/"+action, bearer(token), body)
				require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", action, r.body)
				require.Contains(t, string(r.body), "one JSON document", action)
			}
			requireUnchanged(t, b.backend)
		})
	}

	// White space around the one document is fine.
	r := do(t, b.server, "POST", "/api/dlq/retry", bearer(token), " \n{\"queue\":\"q1\"}\r\n\t ")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var retried map[string]int
	r.json(t, &retried)
	require.Equal(t, 1, retried["retried"])
}

// TestOversizedBodyIs413: a body over the limit answers 413 naming the
// limit, not a misleading 400, and changes nothing (issue 17, item 5: 20
// MB answered 400 "body: unexpected EOF"). The limit is reached wherever
// it falls: inside the document, or in what follows it.
func TestOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	ids := `{"ids":["` + strings.Repeat(`0123456789abcdef", "`, 20<<20/20) + `x"]}`
	for name, body := range map[string]string{
		"20MBDocument":          ids,
		"JustOverTheLimit":      `{"queue":"` + strings.Repeat("q", httpapi.MaxBodyBytes) + `"}`,
		"SmallDocumentThen20MB": `{"all":true}` + strings.Repeat(" ", 20<<20),
		"20MBBeforeTheDocument": strings.Repeat(" ", 20<<20) + `{"all":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			for _, action := range []string{"retry", "purge"} {
				r := do(t, b.server, "POST", "/api/dlq/"+action, bearer(token), body)
				require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%s: %s", action, r.body)
				require.Contains(t, string(r.body), "1 MiB", action)
			}
			requireUnchanged(t, b.backend)
		})
	}

	// A body at the limit is read whole.
	pad := httpapi.MaxBodyBytes - len(`{"queue":"q1"}`)
	r := do(t, b.server, "POST", "/api/dlq/purge", bearer(token), `{"queue":"q1"}`+strings.Repeat(" ", pad))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var purged map[string]int
	r.json(t, &purged)
	require.Equal(t, 1, purged["purged"])
}

// TestWrongMethodIs405: a known path asked with a method it does not
// serve answers 405 with an Allow header naming the ones it does, on
// every endpoint (issue 17, item 6: the /api/ catch-all answered 404 to
// PUT /api/queues and DELETE /api/dlq). An unknown path stays 404.
func TestWrongMethodIs405(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	gets := []string{
		"/api/queues", "/api/queues/q1", "/api/queues/q1/pending", "/api/queues/q1@worker-1",
		"/api/queues/q1@worker-1/pending", "/api/dlq", "/api/instances",
		"/metrics", "/healthz", "/readyz", "/", "/static/app.js",
	}
	for _, p := range gets {
		for _, m := range []string{"PUT", "POST", "DELETE", "PATCH"} {
			r := do(t, b.server, m, p, bearer(token), `{"all":true}`)
			require.Equal(t, http.StatusMethodNotAllowed, r.status, "%s %s: %s", m, p, r.body)
			require.Equal(t, "GET, HEAD", r.header.Get("Allow"), "%s %s", m, p)
			if strings.HasPrefix(p, "/api/") {
				require.Contains(t, r.header.Get("Content-Type"), "application/json", "%s %s", m, p)
				require.Contains(t, string(r.body), "use GET", "%s %s", m, p)
			}
		}
	}
	for _, p := range []string{"/api/dlq/retry", "/api/dlq/purge"} {
		for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "PATCH"} {
			r := do(t, b.server, m, p, bearer(token), `{"all":true}`)
			require.Equal(t, http.StatusMethodNotAllowed, r.status, "%s %s", m, p)
			require.Equal(t, "POST", r.header.Get("Allow"), "%s %s", m, p)
		}
	}
	for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
		for _, p := range []string{"/api/nothing", "/api/dlq/nothing", "/api/queues/q1/nothing", "/nothing"} {
			r := do(t, b.server, m, p, bearer(token), nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s %s", m, p)
			require.Empty(t, r.header.Get("Allow"), "%s %s", m, p)
		}
	}
	requireUnchanged(t, b.backend)
}

// TestQueryParametersAreChecked: a query parameter is never dropped or
// ignored, which would widen what a request selects: Go's url.Query drops
// ?queue=q1;x, so /api/dlq listed every queue's dead letters.
func TestQueryParametersAreChecked(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	deadLetter(t, b.backend, "q1", `{"x":1}`)
	deadLetter(t, b.backend, "q2", `{"x":2}`)
	for _, p := range []string{
		"/api/dlq?queue=q2;x", "/api/dlq?queue=q2&bogus=1", "/api/dlq?queu=q2", "/api/dlq?queue=q2&queue=q1",
		"/api/dlq?queue=%zz", "/api/dlq?limit=1;limit=2", "/api/queues?x=1", "/api/queues/q1?limit=1",
		"/api/queues/q1/pending?limit=5&page=1", "/api/instances?service=singularity",
	} {
		r := do(t, b.server, "GET", p, "", nil)
		require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", p, r.body)
		require.Contains(t, string(r.body), "query", p)
	}
	for _, p := range []string{"/api/dlq?queue=q2", "/api/dlq?queue=q2&instance=", "/api/queues/q1/pending?limit=5", "/api/queues?"} {
		r := do(t, b.server, "GET", p, "", nil)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", p, r.body)
	}
	// A mutation reads its selection from the body alone.
	r := do(t, b.server, "POST", "/api/dlq/purge?all=true", bearer(token), map[string]any{"queue": "q2"})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	requireUnchanged(t, b.backend)
}
