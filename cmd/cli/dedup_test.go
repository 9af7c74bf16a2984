package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// TestPublishDedupKey: a second publish with the same --dedup-key prints
// the first message's id and stores nothing; queues lists the window.
func TestPublishDedupKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.MetricsQueue
	r := b.run(t, "publish", q, "--payload", `{"run":"r-17"}`, "--raw", "--dedup-key", "run-r-17", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	first := r.lines(t)
	require.Len(t, first, 1)
	require.Equal(t, false, first[0]["duplicate"])

	r = b.run(t, "publish", q, "--payload", `{"run":"r-17","again":true}`, "--raw", "--dedup-key", "run-r-17", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	again := r.lines(t)
	require.Len(t, again, 1)
	require.Equal(t, first[0]["id"], again[0]["id"], "the duplicate prints the first message's id")
	require.Equal(t, true, again[0]["duplicate"])

	r = b.run(t, "publish", q, "--payload", `{}`, "--raw", "--dedup-key", "run-r-17")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Equal(t, first[0]["id"], strings.TrimSpace(r.stdout))

	st, err := b.backend.Stats(context.Background(), q)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Pending)

	r = b.run(t, "queues", "--json")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf(`"dedup_window_ms":%d`, pubsub.DefaultDedupWindow.Milliseconds()))
	r = b.run(t, "queues")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "DEDUP_WINDOW")
}

func TestPublishDedupKeyAndSizeRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := topology.ProposalsQueue
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"EmptyKey":  {[]string{"--dedup-key", ""}, "--dedup-key"},
		"LongKey":   {[]string{"--dedup-key", strings.Repeat("k", pubsub.MaxDedupKeyLen+1)}, "--dedup-key"},
		"ControlCh": {[]string{"--dedup-key", "a\tb"}, "without control characters"},
		"Count":     {[]string{"--dedup-key", "k", "--count", "2"}, "--dedup-key with --count 2"},
	} {
		r := b.run(t, append([]string{"publish", q, "--payload", "{}"}, c.args...)...)
		require.Equal(t, cli.ExitUsage, r.code, name)
		require.Contains(t, r.stderr, c.want, name)
	}
	big := `"` + strings.Repeat("x", pubsub.DefaultMaxPayload) + `"`
	r := b.run(t, "publish", q, "--payload", big, "--raw")
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, fmt.Sprintf("publish to queue %s: --payload is %d bytes, over the backend's limit of %d bytes", q, len(big), pubsub.DefaultMaxPayload))
	st, err := b.backend.Stats(context.Background(), q)
	if err == nil {
		require.Zero(t, st.Pending, "nothing was published")
	}
}
