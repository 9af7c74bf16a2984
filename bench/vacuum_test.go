package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSliceRatesSplitsEvenly checks the hold's slices: equal slices of
// the time, a slice without a sample merged into the next, and no slice
// of nothing at the end (the release comes just after the last sample).
func TestSliceRatesSplitsEvenly(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int, consumed int64) vacuumSample {
		return vacuumSample{at: t0.Add(time.Duration(ms) * time.Millisecond), consumed: consumed}
	}
	var pts []vacuumSample
	for i := range 13 {
		pts = append(pts, at(i*500, int64(i)*1000))
	}
	pts = append(pts, at(6001, 12002))
	rates := sliceRates(pts, 6)
	require.Len(t, rates, 6)
	for _, r := range rates {
		require.InDelta(t, 2000, r, 1)
	}
	// Two samples 3 s apart: the slices before the second are empty and
	// merged into the last.
	require.Equal(t, []float64{1000}, sliceRates([]vacuumSample{at(0, 0), at(3000, 3000)}, 6))
	require.Nil(t, sliceRates(pts[:1], 6))
}

// TestVacuumTargetsRows checks issue 16's three held-back-vacuum rows:
// the ratio, the claim p99 (reported: met once measured) and the dead
// tuples (met only when under the bound within 60 s).
func TestVacuumTargetsRows(t *testing.T) {
	t.Parallel()
	res := &Result{Scenario: ScenarioVacuum, Subject: SubjectPostgres, Params: Params{Pending: 1000}, Vacuum: &VacuumFigures{
		RateWithout: 1000, RateDuring: 850, Ratio: 0.85, ClaimDuring: &Latency{P50Ms: 1, P99Ms: 7, Samples: 10},
		DeadBound: 11_000, SecondsToBound: -1, RecoverSeconds: 60, DeadAtEnd: 50_000, FirstAutovacuumAfter: -1,
	}}
	rep := &Report{Mode: "full", Sizes: fullSizes, Results: []*Result{res}}
	find := func(sc, subject string, match func(Params) bool) *Result {
		if sc == res.Scenario && subject == res.Subject && match(res.Params) {
			return res
		}
		return nil
	}
	rows := vacuumTargets(rep, find)
	require.Len(t, rows, 3)
	require.Equal(t, "met", rows[0].Status())
	require.InDelta(t, 0.85, rows[0].Figure, 1e-9)
	require.Equal(t, "met", rows[1].Status())
	require.InDelta(t, 7, rows[1].Figure, 1e-9)
	require.Empty(t, rows[1].Op, "the claim p99 is only reported")
	require.Equal(t, "NOT met", rows[2].Status())

	res.Vacuum.SecondsToBound = 12
	require.Equal(t, "met", vacuumTargets(rep, find)[2].Status())

	rep.Results = nil
	for _, row := range vacuumTargets(rep, func(string, string, func(Params) bool) *Result { return nil }) {
		require.Equal(t, "not measured", row.Status())
		require.NotEmpty(t, row.Detail)
	}
}
