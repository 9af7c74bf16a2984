package postgres_test

import (
	"testing"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	url := pgtest.Database(t)
	pubsubtest.Run(t, pubsubtest.Harness{
		Open: func(t *testing.T) *pubsub.Backend { return open(t, url) },
	})
}
