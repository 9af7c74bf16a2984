package nats_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

func TestConformance(t *testing.T) {
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	pubsubtest.Run(t, pubsubtest.Harness{
		Open: func(t *testing.T) *pubsub.Backend {
			b, err := pubsub.Open(context.Background(), srv.ClientURL(), pubsub.WithLogger(testLogger(t)))
			require.NoError(t, err)
			return b
		},
	})
}

// testLogger logs to the test's output when QF_TEST_LOG is set, else
// nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("QF_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
