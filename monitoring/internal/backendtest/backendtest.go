// Package backendtest gives the monitoring tests every QuantumFlow backend
// to run against: the in-memory one, PostgreSQL (a fresh database on
// pgtest's throwaway cluster) and NATS JetStream (an embedded server per
// test). A test binary that uses it calls pgtest.Main from TestMain, which
// stops the cluster; under CI=true a missing PostgreSQL fails the test.
package backendtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// Kind is one backend.
type Kind struct {
	// Name is the URL scheme: mem, postgres, nats.
	Name string
	// URL returns the URL of a fresh, private instance of the backend
	// for the test; what it started ends with the test.
	URL func(t testing.TB) string
}

// Kinds returns every backend.
func Kinds() []Kind {
	return []Kind{
		{Name: "mem", URL: func(t testing.TB) string {
			return "mem://" + strings.NewReplacer("/", "-", "#", "-", " ", "-").Replace(t.Name())
		}},
		{Name: "postgres", URL: func(t testing.TB) string { return pgtest.Database(t) }},
		{Name: "nats", URL: func(t testing.TB) string {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			srv, err := embedded.Start(ctx, embedded.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = srv.Close() })
			return srv.ClientURL()
		}},
	}
}

// Open opens a fresh, initialised instance of kind for the test, closed
// when the test ends.
func Open(t testing.TB, kind Kind) *pubsub.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pubsub.Open(ctx, kind.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Init(ctx))
	return b
}
