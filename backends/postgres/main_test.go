package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	pgtest.Main(m)
}

// open opens a backend on url, initialised, closed when the test ends.
func open(t *testing.T, url string) *pubsub.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Init(ctx))
	return b
}
