package testutil

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Contents describes everything b holds that a command or a request could
// change: every queue with its figures (pending, in flight, scheduled,
// dead letters, paused), the instances and the audit log's length. Two
// equal descriptions, one taken before a refused input and one after,
// show that nothing was written.
func Contents(tb testing.TB, b *pubsub.Backend) string {
	tb.Helper()
	ctx := context.Background()
	var s strings.Builder
	infos, err := b.ListQueues(ctx)
	require.NoError(tb, err)
	for _, qi := range infos {
		st, err := b.Stats(ctx, qi.Name)
		require.NoError(tb, err)
		fmt.Fprintf(&s, "queue %s: pending %d, in flight %d, scheduled %d, dead letters %d, paused %t\n",
			qi.Name, st.Pending, st.InFlight, st.Scheduled, st.DeadLetters, st.Paused)
	}
	insts, err := b.Instances(ctx)
	require.NoError(tb, err)
	fmt.Fprintf(&s, "instances: %d\n", len(insts))
	audit, err := b.Audit(ctx, pubsub.MaxAuditLimit)
	require.NoError(tb, err)
	fmt.Fprintf(&s, "audit entries: %d\n", len(audit))
	return s.String()
}
