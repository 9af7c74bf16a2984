package reliability

import (
	"context"
	"fmt"
	"time"
)

// Soak bounds: the harness process (with the embedded NATS server and
// the tally of every message) stays under soakRSS, and ends with at most
// soakGoroutines more goroutines than it started with.
const (
	soakRSS        = 1024 // MiB
	soakGoroutines = 100
)

// soakScenario pushes many messages through the topology as fast as it
// takes them, sampling the process.
func soakScenario(ctx context.Context, r *run) error {
	n := pick(r, 1_000_000, 20_000)
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	r.res.Done = fmt.Sprintf("%d messages over the seed's three work queues, published in batches of 100 by 4 publishers as fast as they go while CentralCloud consumes", n)
	began := time.Now()
	f, err := r.underLoad(ctx, u, load{To: n, Batch: 100, Workers: 4}, 0, func(context.Context, *flow) error { return nil })
	if err != nil {
		return err
	}
	took := time.Since(began)
	r.res.figure("messages/s end to end", "%.0f", float64(f.t.consumed.Load())/took.Seconds())
	return nil
}

// checkSoak applies the soak's bounds to a finished result.
func checkSoak(res *Result) {
	if res.Peak.RSSMiB > soakRSS {
		res.fail("peak RSS %.0f MiB over %d MiB", res.Peak.RSSMiB, soakRSS)
	}
	if res.End.Goroutines > res.Start.Goroutines+soakGoroutines {
		res.fail("%d goroutines at the end, %d at the start", res.End.Goroutines, res.Start.Goroutines)
	}
}
