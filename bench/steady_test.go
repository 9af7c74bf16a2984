package bench

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWindowFigures checks the steady run's window bookkeeping: messages
// go to the window of their intended send time, a missing one counts
// with the time it had waited at the end, and messages past the last
// window count in it.
func TestWindowFigures(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// 35 messages 100 ms apart in 3 windows of 1 s: the last 5 are past
	// the third window's end.
	tr := newTracker(start, 100*time.Millisecond, 35)
	for i := range tr.lat {
		if i == 5 || i == 25 {
			continue // missing
		}
		tr.lat[i].Store(int64(time.Duration(i+1)*time.Millisecond) + 1)
	}
	end := start.Add(5 * time.Second)
	figs := windowFigures(tr, end, time.Second, 3)
	require.Len(t, figs, 3)

	require.InDelta(t, 0.0, figs[0].FromS, 1e-9)
	require.Equal(t, int64(9), figs[0].Messages)
	require.Equal(t, int64(1), figs[0].Missing)
	// Message 5, intended at 0.5 s, had waited 4.5 s at the end.
	require.InDelta(t, 4500.0, figs[0].Latency.MaxMs, 1e-6)
	require.Equal(t, 10, figs[0].Latency.Samples)

	require.InDelta(t, 1.0, figs[1].FromS, 1e-9)
	require.Equal(t, int64(10), figs[1].Messages)
	require.Zero(t, figs[1].Missing)
	require.InDelta(t, 15.0, figs[1].Latency.P50Ms, 1e-6, "nearest rank: the 5th of 11..20 ms")
	require.InDelta(t, 20.0, figs[1].Latency.P99Ms, 1e-6)

	require.InDelta(t, 2.0, figs[2].FromS, 1e-9)
	require.Equal(t, int64(14), figs[2].Messages, "messages 20-34 but 25, the 5 past the window's end included")
	require.Equal(t, int64(1), figs[2].Missing)
	require.InDelta(t, 2500.0, figs[2].Latency.MaxMs, 1e-6, "message 25, intended at 2.5 s")
}

// TestSteadyTargets checks the steady rows of the targets table: three
// per backend, each deciding its own condition, and a backend without a
// result saying so.
func TestSteadyTargets(t *testing.T) {
	t.Parallel()
	win := func(p99 float64, size int64) WindowFigure {
		return WindowFigure{Latency: &Latency{P50Ms: p99 / 2, P95Ms: p99, P99Ms: p99, MaxMs: p99, Samples: 100}, SizeBytes: size}
	}
	pg := &Result{Scenario: ScenarioSteady, Subject: SubjectPostgres, Params: Params{PayloadBytes: 256, Workers: 4, Rate: 500},
		Steady: &SteadyFigure{MaxRate: 1000, Offered: 1000, Delivered: 999, Window: Duration(time.Minute), Storage: "table",
			Windows: []WindowFigure{win(10, 1<<20), win(12, 2<<20), win(14, 3<<20)}}}
	rep := &Report{Mode: "full", Sizes: fullSizes, Results: []*Result{pg}}
	var rows []Target
	for _, tg := range checkTargets(rep) {
		if strings.HasPrefix(tg.Text, "Steady state") {
			rows = append(rows, tg)
		}
	}
	require.Len(t, rows, 6)
	for _, tg := range rows {
		require.Equal(t, 16, tg.Issue)
		require.Empty(t, tg.Note, "full mode")
	}
	require.Contains(t, rows[0].Text, "[postgres]")
	require.InDelta(t, 1.4, rows[0].Figure, 1e-9)
	require.Equal(t, "met", rows[0].Status())
	require.InDelta(t, 0.999, rows[1].Figure, 1e-9)
	require.Equal(t, "NOT met", rows[1].Status(), "one message missing")
	require.Contains(t, rows[1].Detail, "1 missing")
	require.InDelta(t, 3.0, rows[2].Figure, 1e-9)
	require.Equal(t, "NOT met", rows[2].Status())
	for _, tg := range rows[3:] {
		require.Contains(t, tg.Text, "[nats]")
		require.Equal(t, "not measured", tg.Status())
		require.Equal(t, "steady/nats not in this run", tg.Detail)
	}

	rep.Mode = "quick"
	for _, tg := range steadyTargets(rep, func(string, string, func(Params) bool) *Result { return nil }) {
		require.Contains(t, tg.Note, "only the full run counts")
	}
}

// TestSampleSizesKeepsLargest checks that each window keeps its largest
// size reading, not the last: a vacuumed table shrinks and grows again
// within a window, and a failed reading does not hide a good one.
func TestSampleSizesKeepsLargest(t *testing.T) {
	t.Parallel()
	// The window a reading falls in is the number of progress lines
	// written so far (one at each window's end), so the readings do not
	// depend on how punctually the sampler wakes.
	var progress windowCounter
	// Each window's first reading is its peak; later ones are smaller (a
	// vacuum truncated the table), or fail.
	peaks := []int64{100, 300}
	reads := map[int]int{}
	g := &gauge{what: "table", read: func(context.Context) (storageSample, error) {
		w := progress.windows()
		reads[w]++
		switch {
		case reads[w] == 1:
			return storageSample{bytes: peaks[w]}, nil
		case w == 0 && reads[w] == 2:
			return storageSample{}, errors.New("connection reset")
		}
		return storageSample{bytes: 10}, nil
	}}
	r := &runner{cfg: Config{Progress: &progress}}
	sizes := make([]storageSample, len(peaks))
	// Windows of 400 ms, read every 100 ms.
	r.sampleSizes(t.Context(), g, "postgres", time.Now(), 400*time.Millisecond, sizes)
	for w, peak := range peaks {
		require.Equal(t, peak, sizes[w].bytes, "window %d: its peak, not its last reading (%d readings)", w+1, reads[w])
	}
}

// windowCounter counts the lines written to it.
type windowCounter struct {
	mu    sync.Mutex
	lines int
}

func (c *windowCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines += strings.Count(string(p), "\n")
	return len(p), nil
}

func (c *windowCounter) windows() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// TestSteadySizeFloor checks the size row of a storage with an allocation
// unit (NATS's message block): sizes within one block compare as one
// block, so a stream moving between 39 and 132 KiB has not grown, while
// one that outgrew the block by more than twice has.
func TestSteadySizeFloor(t *testing.T) {
	t.Parallel()
	grown := func(first, last int64) Target {
		win := func(size int64) WindowFigure {
			return WindowFigure{Latency: &Latency{P99Ms: 10, Samples: 100}, SizeBytes: size}
		}
		r := &Result{Scenario: ScenarioSteady, Subject: SubjectNATS, Params: Params{PayloadBytes: 256, Workers: 4, Rate: 500},
			Steady: &SteadyFigure{MaxRate: 1000, Offered: 10, Delivered: 10, Window: Duration(time.Minute), Storage: "stream",
				SizeFloorBytes: natsBlockBytes, Windows: []WindowFigure{win(first), win(last)}}}
		rep := &Report{Mode: "full", Sizes: fullSizes, Results: []*Result{r}}
		for _, tg := range checkTargets(rep) {
			if strings.HasPrefix(tg.Text, "Steady state") && strings.Contains(tg.Text, "size") && strings.Contains(tg.Text, "[nats]") {
				return tg
			}
		}
		require.FailNow(t, "no NATS size row")
		return Target{}
	}
	small := grown(39<<10, 132<<10)
	require.Equal(t, "met", small.Status())
	require.InDelta(t, 1.0, small.Figure, 1e-9, "both within one block")
	require.Contains(t, small.Detail, "one message block")

	big := grown(39<<10, 9*natsBlockBytes)
	require.Equal(t, "NOT met", big.Status())
	require.InDelta(t, 9.0, big.Figure, 1e-9, "nine blocks against one")
}
