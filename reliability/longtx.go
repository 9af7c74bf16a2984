package reliability

import (
	"context"
	"fmt"
	"time"
)

// phase is a stretch of a run: the messages first consumed in it and the
// latencies of those intended to be sent in it.
type phase struct {
	name     string
	from, to time.Time
}

// phaseFigures returns how many messages were first consumed in ph and
// the first-delivery latencies of the messages sent in it.
func (t *tally) phaseFigures(ph phase) (consumed int, lat []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, seen := range t.seen {
		if seen == 0 || t.published[i] != publishedGood {
			continue
		}
		at := t.firstSeen[i]
		if !at.Before(ph.from) && at.Before(ph.to) {
			consumed++
		}
		if sent := at.Add(-t.latency[i]); !sent.Before(ph.from) && sent.Before(ph.to) {
			lat = append(lat, t.latency[i])
		}
	}
	return consumed, lat
}

// longTxScenario holds a transaction open on the database while a paced
// stream is consumed, and compares the stretches before, during and after
// it.
func longTxScenario(ctx context.Context, r *run) error {
	before, hold, after := pick(r, 20*time.Second, 4*time.Second), pick(r, 60*time.Second, 10*time.Second), pick(r, 20*time.Second, 4*time.Second)
	rate := pick(r, 1000.0, 200.0)
	n := int(rate * (before + hold + after).Seconds())
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10); after %s a REPEATABLE READ transaction with a transaction id held open for %s, then %s more", n, rate, before, hold, after)
	f, err := r.openFlow(ctx, u, n)
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.consume(ctx); err != nil {
		return err
	}
	start := time.Now()
	pubDone := make(chan error, 1)
	go func() { pubDone <- f.publish(ctx, load{To: n, Batch: 10, Workers: 8, Rate: rate}) }()
	if err := sleep(ctx, before); err != nil {
		return err
	}
	deadAt := map[string]int64{}
	deadAt["when the transaction began"], _ = deadTuples(ctx, u)
	r.logf("holding a transaction open for %s", hold)
	end, err := holdSnapshot(ctx, u)
	if err != nil {
		return err
	}
	held := time.Now()
	err = sleep(ctx, hold)
	deadAt["when it ended"], _ = deadTuples(ctx, u)
	end()
	released := time.Now()
	if err != nil {
		return err
	}
	if err := <-pubDone; err != nil {
		return err
	}
	if _, err := f.drain(ctx, pick(r, 3*time.Minute, time.Minute)); err != nil {
		return err
	}
	finished := time.Now()
	// Autovacuum's naptime is a minute by default; what it cleans after
	// the transaction shows in a full run.
	deadAt["after the drain"], _ = deadTuples(ctx, u)
	for _, k := range []string{"when the transaction began", "when it ended", "after the drain"} {
		r.res.figure("dead tuples "+k, "%d", deadAt[k])
	}
	for _, ph := range []phase{{"before", start, held}, {"during", held, released}, {"after", released, finished}} {
		consumed, lat := f.t.phaseFigures(ph)
		secs := ph.to.Sub(ph.from).Seconds()
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		r.res.figure("consumed/s "+ph.name, "%.0f", float64(consumed)/secs)
		r.res.figure("claim latency "+ph.name+" p50 / p99", "%s / %s", p50.Round(time.Millisecond), p99.Round(time.Millisecond))
		if ph.name == "during" && p99 >= 5*time.Second {
			r.res.fail("claim latency p99 during the transaction %s (rule: under 5s)", p99.Round(time.Millisecond))
		}
	}
	return nil
}
