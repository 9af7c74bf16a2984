package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// FuzzRequest: any request — method, path with query, body, with or
// without the admin token — is answered without a panic and without a
// server error, and no answer shows the token.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct {
		method, target, body string
		auth                 bool
	}{
		{"GET", "/api/queues", "", false},
		{"GET", "/api/queues/q1/pending?limit=5", "", false},
		{"GET", "/api/queues/..%2F..%2Fetc%2Fpasswd", "", false},
		{"GET", "/api/dlq?queue=q1'%20OR%201=1--&limit=-1", "", false},
		{"POST", "/api/dlq/retry", `{"queue":"q1"}`, true},
		{"POST", "/api/dlq/purge", `{"ids":["a","b"]}`, true},
		{"POST", "/api/dlq/retry", `{"queue":`, true},
		{"POST", "/api/dlq/purge", "\x00\xff", false},
		{"DELETE", "/api/queues/q1", "", true},
		{"GET", "/api/queues/%00", "", false},
		{"GET", "/static/../../go.mod", "", false},
		{"GET", "/", "", false},
	} {
		f.Add(s.method, s.target, s.body, s.auth)
	}
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	if err != nil {
		f.Fatal(err)
	}
	defer b.Close()
	if err := b.Init(ctx); err != nil {
		f.Fatal(err)
	}
	h := httpapi.New(httpapi.Options{Backend: b, Registry: prometheus.NewRegistry(), AdminToken: token})
	f.Fuzz(func(t *testing.T, method, target, body string, auth bool) {
		req, err := http.NewRequest(method, "http://localhost"+target, strings.NewReader(body))
		if err != nil {
			return // no client can send it
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), token) {
			t.Fatalf("%s %q: the answer shows the admin token", method, target)
		}
	})
}
