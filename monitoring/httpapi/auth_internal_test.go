package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestAdminWrapperConvention checks the convention every mutating handler
// follows (see admin): a reported mutation is audited as reported (with
// its error when it failed part way, whatever the status); a 2xx answer
// without a report is audited with the path's {queue} and count 0; a 4xx
// without one is not audited; the handler's answer reaches the client
// unchanged.
func TestAdminWrapperConvention(t *testing.T) {
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	a := &api{opts: Options{Backend: b, AdminToken: "t", RequestTimeout: 5e9}, log: slog.New(slog.DiscardHandler)}
	a.adminSum = tokenSum("t")
	mux := http.NewServeMux()
	mux.Handle("POST /q/{queue}/reported", a.admin("queue.test", func(w http.ResponseWriter, r *http.Request) {
		reportMutation(r, Mutation{Queue: "q9", Count: 7, Detail: "d", Err: errors.New("stopped at 7")})
		w.Header().Set("X-Test", "kept")
		writeError(w, http.StatusServiceUnavailable, "stopped at 7")
	}))
	mux.Handle("POST /q/{queue}/silent", a.admin("queue.silent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.Handle("POST /q/{queue}/bad", a.admin("queue.bad", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusBadRequest, "bad")
	}))
	post := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set("Authorization", "Bearer t")
		mux.ServeHTTP(rec, req)
		return rec
	}
	rec := post("/q/q1/reported")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "kept", rec.Header().Get("X-Test"))
	require.True(t, strings.Contains(rec.Body.String(), "stopped at 7"))
	require.Equal(t, http.StatusNoContent, post("/q/q2/silent").Code)
	require.Equal(t, http.StatusBadRequest, post("/q/q3/bad").Code)

	es, err := b.Audit(ctx, 10)
	require.NoError(t, err)
	require.Len(t, es, 2)
	require.Equal(t, "queue.silent", es[0].Action)
	require.Equal(t, "q2", es[0].Queue)
	require.Equal(t, 0, es[0].Count)
	require.Equal(t, "queue.test", es[1].Action)
	require.Equal(t, "q9", es[1].Queue)
	require.Equal(t, 7, es[1].Count)
	require.Equal(t, "d", es[1].Detail)
	require.Equal(t, "stopped at 7", es[1].Error)
	require.Equal(t, RoleAdmin, es[1].Role)
}
