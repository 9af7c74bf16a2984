package httpapi_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// The PostgreSQL tests share one throwaway cluster, stopped at the end.
func TestMain(m *testing.M) { pgtest.Main(m) }

// backendKinds are the backends the tests that run on every backend use.
var backendKinds = []string{"mem", "postgres", "nats"}

// openKind opens and initialises a fresh backend of kind for the test: a
// private mem storage, a database of the shared PostgreSQL cluster, or an
// embedded NATS server of its own.
func openKind(t *testing.T, kind string) *pubsub.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var url string
	switch kind {
	case "mem":
		url = "mem://"
	case "postgres":
		url = pgtest.Database(t)
	case "nats":
		srv, err := embedded.Start(ctx, embedded.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		url = srv.ClientURL()
	default:
		t.Fatalf("unknown backend kind %q", kind)
	}
	b, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Init(ctx))
	return b
}

// setupOn serves the API over a fresh backend of kind.
func setupOn(t *testing.T, kind string, opts httpapi.Options) *bundle {
	t.Helper()
	b := openKind(t, kind)
	reg := prometheus.NewRegistry()
	opts.Backend = b
	if opts.Registry == nil {
		opts.Registry = reg
	}
	h := httpapi.New(opts)
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &bundle{backend: b, server: srv, reg: reg}
}
