package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunOrderMirrorsSameBackendPairs checks that in full mode the jobs
// of a same-backend comparison run A B B A, so that each sits at the same
// mean position, and that other scenarios and quick mode run once each.
func TestRunOrderMirrorsSameBackendPairs(t *testing.T) {
	t.Parallel()
	a, b := &job{scenario: ScenarioTypedConsume}, &job{scenario: ScenarioTypedConsume}
	require.Equal(t, []*job{a, b, b, a}, runOrder(ScenarioTypedConsume, []*job{a, b}, false))
	require.Equal(t, []*job{a, b}, runOrder(ScenarioTypedConsume, []*job{a, b}, true))
	require.Equal(t, []*job{a, b}, runOrder(ScenarioConsume, []*job{a, b}, false))
}

// TestMergeRunsIsMessagesOverTime checks that two runs of one job combine
// into their messages over their time, and that a failed run fails the
// figure.
func TestMergeRunsIsMessagesOverTime(t *testing.T) {
	t.Parallel()
	first := &Result{Messages: 1000, Seconds: 1, Throughput: 1000}
	second := &Result{Messages: 1000, Seconds: 3, Throughput: 333, Note: "preload cut short"}
	m := mergeRuns(first, second)
	require.Equal(t, int64(2000), m.Messages)
	require.InDelta(t, 4.0, m.Seconds, 1e-9)
	require.InDelta(t, 500.0, m.Throughput, 1e-9)
	require.Contains(t, m.Note, "preload cut short")
	require.Equal(t, int64(1000), first.Messages, "the first run's result is not changed")

	failed := &Result{Error: "boom"}
	require.Equal(t, "boom", mergeRuns(first, failed).Error)
	require.Equal(t, "boom", mergeRuns(failed, second).Error)
}
