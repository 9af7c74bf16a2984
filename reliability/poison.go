package reliability

import (
	"context"
	"fmt"
	"time"
)

// poisonNoise is the least the poison rule allows the good messages' p99
// to grow by: below it, the machine's scheduling decides, not the queue.
// A short run's p99 rests on its ten slowest good messages, so a few
// scheduling hiccups on a busy CI machine move it by hundreds of
// milliseconds: its floor is wider.
func poisonNoise(r *run) time.Duration { return pick(r, 20*time.Millisecond, 250*time.Millisecond) }

// poisonScenario runs good messages alone, then the same good messages
// with malformed ones mixed in (one in three), at the same good rate,
// and compares the good messages' latency.
func poisonScenario(ctx context.Context, r *run) error {
	good, rate := pick(r, 20_000, 1_000), pick(r, 1000.0, 200.0)
	bad := good / 2
	r.res.Done = fmt.Sprintf("a clean run of %d good messages at %.0f/s (batches of 10), then %d good and %d malformed ones (every third: not JSON, cut short, binary, an array, wrong types) at %.0f/s; the handler dead-letters a malformed message at once (middleware.Permanent)", good, rate, good, bad, rate*1.5)
	clean, err := r.latencyRun(ctx, load{To: good, Batch: 10, Workers: 8, Rate: rate})
	if err != nil {
		return fmt.Errorf("clean run: %w", err)
	}
	isBad := func(i int) bool { return i%3 == 2 }
	mixed, err := r.latencyRun(ctx, load{To: good + bad, Batch: 10, Workers: 8, Rate: rate * 1.5, Bad: isBad})
	if err != nil {
		return fmt.Errorf("poison run: %w", err)
	}
	r.res.figure("good p50 / p99, clean", "%s / %s", clean[0].Round(time.Millisecond), clean[1].Round(time.Millisecond))
	r.res.figure("good p50 / p99, with poison", "%s / %s", mixed[0].Round(time.Millisecond), mixed[1].Round(time.Millisecond))
	if clean[1] > 0 {
		r.res.figure("p99 ratio", "%.2fx", float64(mixed[1])/float64(clean[1]))
	}
	if limit := max(2*clean[1], clean[1]+poisonNoise(r)); mixed[1] > limit {
		r.res.fail("good p99 with poison %s over %s", mixed[1].Round(time.Millisecond), limit.Round(time.Millisecond))
	}
	return nil
}

// latencyRun runs l through a new flow and returns the good messages'
// p50 and p99 latency. The accounting of the last run is the result's.
func (r *run) latencyRun(ctx context.Context, l load) ([2]time.Duration, error) {
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return [2]time.Duration{}, err
	}
	f, err := r.underLoad(ctx, u, l, 0, func(context.Context, *flow) error { return nil })
	if err != nil {
		return [2]time.Duration{}, err
	}
	lat := f.t.goodLatencies(l.From, l.To)
	return [2]time.Duration{percentile(lat, 0.5), percentile(lat, 0.99)}, nil
}
