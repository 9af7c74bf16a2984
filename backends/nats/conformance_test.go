package nats_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

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
