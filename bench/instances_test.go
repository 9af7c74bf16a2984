package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// instancesRun is an instances result at n instances delivering ratio of
// what was offered, or failed with errText.
func instancesRun(subject string, n int, ratio float64, searched bool, errText string) *Result {
	r := &Result{Scenario: ScenarioInstances, Subject: subject, Params: Params{Instances: n}, Searched: searched, Error: errText,
		Ratios: []Ratio{{Baseline: "offered load", Metric: "delivered", Value: ratio}}}
	if errText != "" {
		r.Ratios = nil
	}
	return r
}

// TestInstancesHeldCountsTheSearch checks the largest-count-held row over
// planned and searched counts: the largest count at 1.00, whatever the
// order of the results, a count short of 1.00 or failed not held, and the
// ceiling said when the search reached it.
func TestInstancesHeldCountsTheSearch(t *testing.T) {
	t.Parallel()
	rep := &Report{Mode: "full", Sizes: Sizes{InstanceCounts: []int{100, 200}, InstanceCeiling: 800}}
	rep.Results = []*Result{
		instancesRun(SubjectPostgres, 400, 1, true, ""),
		instancesRun(SubjectPostgres, 100, 1, false, ""),
		instancesRun(SubjectPostgres, 200, 1, false, ""),
		instancesRun(SubjectPostgres, 800, 0.97, true, ""),
		instancesRun(SubjectNATS, 100, 1, false, ""),
		instancesRun(SubjectNATS, 200, 1, false, ""),
		instancesRun(SubjectNATS, 400, 0, true, "send: nats: timeout"),
	}
	pg := heldTarget(rep, SubjectPostgres, "")
	require.Equal(t, 400.0, pg.Figure, pg.Detail)
	require.True(t, *pg.Met)
	require.Contains(t, pg.Detail, "100: 1.0000, 200: 1.0000, 400: 1.0000, 800: 0.9700")
	require.NotContains(t, pg.Detail, "the search stops")

	nats := heldTarget(rep, SubjectNATS, "")
	require.Equal(t, 200.0, nats.Figure, nats.Detail)
	require.Contains(t, nats.Detail, "400: instances/nats failed: send: nats: timeout")

	rep.Results[3] = instancesRun(SubjectPostgres, 800, 1, true, "")
	pg = heldTarget(rep, SubjectPostgres, "")
	require.Equal(t, 800.0, pg.Figure)
	require.Contains(t, pg.Detail, "the search stops at 800 instances")
}

// TestFailedLeavesOutSearchedCounts checks that a searched instance count
// that failed does not fail the run, and that any other failure does.
func TestFailedLeavesOutSearchedCounts(t *testing.T) {
	t.Parallel()
	rep := &Report{Results: []*Result{
		instancesRun(SubjectNATS, 200, 1, false, ""),
		instancesRun(SubjectNATS, 400, 0, true, "send: nats: timeout"),
	}}
	require.Empty(t, rep.Failed())
	rep.Results = append(rep.Results,
		instancesRun(SubjectPostgres, 200, 0, false, "open: refused"),
		&Result{Scenario: ScenarioPublish, Subject: SubjectPostgres, Error: "x"},
		&Result{Scenario: ScenarioPublish, Subject: SubjectPostgres, Error: "y"})
	require.Equal(t, []string{"instances/postgres", "publish/postgres"}, rep.Failed())
}

// TestNextCount checks the search's counts: doubling from 200 while every
// count holds, up to the ceiling; halfway steps once one failed, until the
// gap is at most a quarter of the count held.
func TestNextCount(t *testing.T) {
	t.Parallel()
	// tries runs the search against a machine that holds up to limit.
	tries := func(limit, ceiling int) (out []int) {
		held, failed := 200, 0
		for n := nextCount(held, failed, ceiling); n > 0; n = nextCount(held, failed, ceiling) {
			out = append(out, n)
			if n <= limit {
				held = n
			} else {
				failed = n
			}
		}
		return out
	}
	require.Equal(t, []int{400, 300, 250}, tries(260, 1600))
	require.Equal(t, []int{400, 300, 350}, tries(330, 1600))
	require.Equal(t, []int{400, 800, 600, 700}, tries(700, 1600))
	require.Equal(t, []int{400, 800, 1600}, tries(5000, 1600))
	require.Equal(t, []int{400, 800, 1600}, tries(1599, 1600)[:3])
	require.Empty(t, tries(5000, 300), "twice 200 is past the ceiling")
}
