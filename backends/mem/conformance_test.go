package mem_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestConformance runs the conformance suite: every backend opened by the
// harness shares one named in-process storage, as services of one process
// would.
func TestConformance(t *testing.T) {
	t.Parallel()
	url := "mem://conformance-" + uuid.NewString()
	pubsubtest.Run(t, pubsubtest.Harness{
		Open: func(t *testing.T) *pubsub.Backend {
			b, err := pubsub.Open(context.Background(), url)
			require.NoError(t, err)
			return b
		},
	})
}
