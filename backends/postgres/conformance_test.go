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

// TestConformanceAsyncAcksPollOnly runs the suite in the other modes:
// acks committed asynchronously (sync_acks=false), no LISTEN and no
// prepared statements (as behind PgBouncer in transaction mode), in a
// schema of its own.
func TestConformanceAsyncAcksPollOnly(t *testing.T) {
	t.Parallel()
	url := withParams(pgtest.Database(t), "sync_acks", "false", "listen", "false", "poll_interval", "20ms",
		"default_query_exec_mode", "exec", "schema", "qf")
	pubsubtest.Run(t, pubsubtest.Harness{
		Open: func(t *testing.T) *pubsub.Backend { return open(t, url) },
	})
}
