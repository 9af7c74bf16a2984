package bench

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50Ms   float64 `json:"p50_ms"`
	P95Ms   float64 `json:"p95_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	Samples int     `json:"samples"`
}

// summarize returns the distribution of ns (nanoseconds); ns is sorted in
// place. Percentiles use the nearest-rank method.
func summarize(ns []int64) *Latency {
	if len(ns) == 0 {
		return nil
	}
	slices.Sort(ns)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ns)))) - 1
		i = max(0, min(i, len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	return &Latency{P50Ms: rank(0.50), P95Ms: rank(0.95), P99Ms: rank(0.99), MaxMs: float64(ns[len(ns)-1]) / 1e6, Samples: len(ns)}
}

// tracker records end-to-end latencies of n messages numbered 0..n-1,
// measured from each message's intended send time, not from when it was
// actually sent: a publisher that stalls delays the messages scheduled
// behind it, and those delays must show (no coordinated omission).
type tracker struct {
	start    time.Time
	interval time.Duration
	n        int64

	lat      []atomic.Int64 // latency in ns + 1; 0 = not received yet
	received atomic.Int64
	dups     atomic.Int64
	bad      atomic.Int64
	doneOnce sync.Once
	done     chan struct{}
}

// newTracker tracks n messages, message i intended to be sent at
// start + i*interval.
func newTracker(start time.Time, interval time.Duration, n int) *tracker {
	return &tracker{start: start, interval: interval, n: int64(n), lat: make([]atomic.Int64, n), done: make(chan struct{})}
}

// intended returns when message seq was meant to be sent.
func (t *tracker) intended(seq int64) time.Time {
	return t.start.Add(time.Duration(seq) * t.interval)
}

// observe records the arrival of the message whose payload is p.
func (t *tracker) observe(p []byte) {
	now := time.Now()
	seq, ok := payloadSeq(p)
	if !ok || seq < 0 || seq >= t.n {
		t.bad.Add(1)
		return
	}
	d := max(now.Sub(t.intended(seq)), 0)
	if !t.lat[seq].CompareAndSwap(0, int64(d)+1) {
		t.dups.Add(1)
		return
	}
	if t.received.Add(1) == t.n {
		t.doneOnce.Do(func() { close(t.done) })
	}
}

// wait returns when every message arrived, or at deadline.
func (t *tracker) wait(deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
	}
}

// result returns the distribution of the received messages and how many
// are missing. A missing message counts in the distribution with the time
// it had been waiting when the measurement ended, so that losing or
// stalling messages can only make the figures worse.
func (t *tracker) result(end time.Time) (lat *Latency, missing int64) {
	ns := make([]int64, 0, t.n)
	for i := range t.lat {
		v := t.lat[i].Load()
		if v == 0 {
			missing++
			v = int64(max(end.Sub(t.intended(int64(i))), 0)) + 1
		}
		ns = append(ns, v-1)
	}
	return summarize(ns), missing
}
