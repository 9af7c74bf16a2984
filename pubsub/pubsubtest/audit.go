package pubsubtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// testAudit checks the audit log: entries come back newest first with
// every field, from another backend on the same storage too; the limit
// takes the newest; bad entries and limits are refused; long text is cut.
func (s *suite) testAudit(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	// Other cases and runs may write to the same log: this case's entries
	// are told apart by their queue.
	queue := "audit_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	at := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	want := []pubsub.AuditEntry{
		{At: at, Role: pubsub.AuditRoleAdmin, Remote: "127.0.0.1:5000", Action: "dlq.retry", Queue: queue, Count: 3, Detail: `error_contains="timeout"`},
		{At: at.Add(time.Second), Role: pubsub.AuditRoleCLI, Remote: "ops@host", Action: "dlq.purge", Queue: queue, Count: 1, Error: "backend went away"},
		{At: at.Add(2 * time.Second), Role: pubsub.AuditRoleAdmin, Action: "queue.pause", Queue: queue},
	}
	for _, e := range want {
		require.NoError(t, b.RecordAudit(ctx, e))
	}
	mine := func(es []pubsub.AuditEntry) []pubsub.AuditEntry {
		var out []pubsub.AuditEntry
		for _, e := range es {
			if e.Queue == queue {
				e.At = e.At.UTC()
				out = append(out, e)
			}
		}
		return out
	}
	got, err := s.open(t).Audit(ctx, pubsub.MaxAuditLimit)
	require.NoError(t, err)
	require.Equal(t, []pubsub.AuditEntry{want[2], want[1], want[0]}, mine(got), "newest first, every field, seen from another backend")

	// The limit keeps the newest.
	require.NoError(t, b.RecordAudit(ctx, pubsub.AuditEntry{Role: pubsub.AuditRoleCLI, Action: "dlq.retry", Queue: queue, Count: 9}))
	got, err = b.Audit(ctx, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	if got[0].Queue == queue { // unless another case wrote meanwhile
		require.Equal(t, 9, got[0].Count)
		require.WithinDuration(t, time.Now(), got[0].At, time.Minute, "At defaults to now")
	}

	for _, bad := range []pubsub.AuditEntry{
		{Action: "dlq.retry"},
		{Role: "Admin", Action: "dlq.retry"},
		{Role: pubsub.AuditRoleAdmin},
		{Role: pubsub.AuditRoleAdmin, Action: "drop table"},
		{Role: pubsub.AuditRoleAdmin, Action: "dlq.retry", Count: -1},
	} {
		require.ErrorIs(t, b.RecordAudit(ctx, bad), pubsub.ErrInvalidArgument, "%+v", bad)
	}
	for _, limit := range []int{-1, pubsub.MaxAuditLimit + 1} {
		_, err := b.Audit(ctx, limit)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument)
	}
	got, err = b.Audit(ctx, pubsub.MaxAuditLimit)
	require.NoError(t, err)
	require.Len(t, mine(got), 4, "refused entries were not stored")

	long := pubsub.AuditEntry{Role: pubsub.AuditRoleAdmin, Action: "dlq.purge", Queue: queue, Detail: strings.Repeat("é", 2000)}
	require.NoError(t, b.RecordAudit(ctx, long))
	got, err = b.Audit(ctx, pubsub.MaxAuditLimit)
	require.NoError(t, err)
	d := mine(got)[0].Detail
	require.LessOrEqual(t, len(d), 1024)
	require.True(t, strings.HasSuffix(d, "…"), "cut text says so")
}
