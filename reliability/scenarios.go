package reliability

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"time"
)

// Scenario names.
const (
	ScenarioSIGKILL   = "sigkill"
	ScenarioRestart   = "restart"
	ScenarioTerminate = "terminate"
	ScenarioNetwork   = "network"
	ScenarioLongTx    = "long_transaction"
	ScenarioPoison    = "poison"
	ScenarioSoak      = "soak"
)

// scenario is one fault, the backends it applies to and its rule.
type scenario struct {
	name     string
	backends []string
	rule     string
	fn       func(ctx context.Context, r *run) error
}

var scenarios = []*scenario{
	{ScenarioSIGKILL, []string{Postgres, NATS},
		"nothing published is lost; each restarted consumer process resumes; duplicates (deliveries of what a killed process handled but had not acked) are counted, not failed",
		sigkillScenario},
	{ScenarioRestart, []string{Postgres, NATS},
		"nothing acknowledged is lost; publishers fail (and are retried) or wait while the server is down; consuming resumes without restarting the service",
		restartScenario},
	{ScenarioTerminate, []string{Postgres},
		"nothing acknowledged is lost; publishing and consuming resume on new connections without restarting the service",
		terminateScenario},
	{ScenarioCluster, []string{NATS},
		"nothing acknowledged is lost; publishing and consuming go on through the loss of the stream's leader and of a follower, and resume once the whole cluster is back, without restarting the service",
		clusterScenario},
	{ScenarioNetwork, []string{Postgres, NATS},
		"nothing acknowledged is lost; no publish call outlasts its try (60s, a publish error counted and tried again); consuming resumes after each fault",
		networkScenario},
	{ScenarioLongTx, []string{Postgres},
		"nothing lost; while the transaction holds vacuum back, consumers keep up with the offered load (claim latency p99 under 5s during it); the backlog is gone once it ends",
		longTxScenario},
	{ScenarioPoison, []string{Mem, Postgres, NATS},
		"every malformed message is in the dead letters with its reason; no good message is; the good messages' p99 latency stays within 2x of a clean run's (or within 20ms of it in a full run, 250ms in a short one whose p99 rests on ten messages: below that, scheduling noise dominates)",
		poisonScenario},
	{ScenarioSoak, []string{Mem, Postgres, NATS},
		"zero lost; peak RSS within 1 GiB; goroutines at the end within 100 of the start (the embedded NATS server runs in the harness process, and keeps goroutines for the streams and consumers a scenario made)",
		soakScenario},
}

// Scenarios returns every scenario name, in the order they run.
func Scenarios() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// withParams returns u with query parameters set.
func withParams(u string, kv ...string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// leaseParams are the URL parameters that bring a killed consumer's
// messages back within seconds instead of the defaults' 30s.
func leaseParams(backend string) []string {
	if backend == NATS {
		return []string{"ack_wait", "5s"}
	}
	return []string{"lease", "5s"}
}

// underLoad runs l through a new flow on url, consuming in this process,
// and calls fault after the given delay while l is published; then it
// drains the flow and records the accounting.
func (r *run) underLoad(ctx context.Context, u string, l load, after time.Duration, fault func(context.Context, *flow) error) (*flow, error) {
	f, err := r.openFlow(ctx, u, l.To)
	if err != nil {
		return nil, err
	}
	if err := f.consume(ctx); err != nil {
		_ = f.close()
		return nil, err
	}
	pubDone := make(chan error, 1)
	go func() { pubDone <- f.publish(ctx, l) }()
	var faultErr error
	select {
	case <-time.After(after):
		faultErr = fault(ctx, f)
	case err := <-pubDone:
		pubDone <- err
		faultErr = fmt.Errorf("publishing ended before the fault (%v)", err)
	}
	pubErr := <-pubDone
	r.logf("published %d, draining", l.To-l.From)
	drained := time.Now()
	_, drainErr := f.drain(ctx, pick(r, 3*time.Minute, time.Minute))
	r.res.figure("drain after the last publish", "%s", time.Since(drained).Round(100*time.Millisecond))
	closeErr := f.close()
	if err := firstErr(faultErr, pubErr, drainErr); err != nil {
		return f, err
	}
	if closeErr != nil {
		r.res.fail("closing: %v", closeErr)
	}
	return f, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// restartScenario stops the server under load and starts it again after
// an outage.
func restartScenario(ctx context.Context, r *run) error {
	n, rate := pick(r, 40_000, 2_000), pick(r, 500.0, 200.0)
	outage := pick(r, 30*time.Second, 3*time.Second)
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	u = withParams(u, leaseParams(r.backend)...)
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10) over the seed's three work queues, lease 5s; the server stopped after %s, down for %s, started again on the same port and data", n, rate, pick(r, 10*time.Second, 2*time.Second), outage)
	var down time.Duration
	_, err = r.underLoad(ctx, u, load{To: n, Batch: 10, Workers: 8, Rate: rate}, pick(r, 10*time.Second, 2*time.Second), func(ctx context.Context, f *flow) error {
		r.logf("stopping the server for %s", outage)
		began := time.Now()
		err := r.env.stopServer(ctx, r.backend, outage)
		down = time.Since(began)
		return err
	})
	r.res.figure("server down (stop to accepting again)", "%s", down.Round(100*time.Millisecond))
	return err
}

// terminateScenario terminates every backend connection of the database
// three times while messages flow.
func terminateScenario(ctx context.Context, r *run) error {
	n, rate := pick(r, 20_000, 2_000), pick(r, 500.0, 200.0)
	gap := pick(r, 2*time.Second, time.Second)
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	u = withParams(u, leaseParams(r.backend)...)
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10), lease 5s; pg_terminate_backend of every connection to the database three times, %s apart", n, rate, gap)
	var killed []int
	_, err = r.underLoad(ctx, u, load{To: n, Batch: 10, Workers: 8, Rate: rate}, pick(r, 10*time.Second, 2*time.Second), func(ctx context.Context, f *flow) error {
		for range 3 {
			k, err := terminateAll(ctx, r.env.pg.URL(), u)
			if err != nil {
				return err
			}
			killed = append(killed, k)
			r.logf("terminated %d backend connections", k)
			if err := sleep(ctx, gap); err != nil {
				return err
			}
		}
		return nil
	})
	r.res.figure("connections terminated", "%v", killed)
	return err
}

// networkScenario runs the flow through a TCP proxy that adds 200ms of
// latency, then a blackhole, then resets every connection three times.
func networkScenario(ctx context.Context, r *run) error {
	n, rate := pick(r, 30_000, 2_000), pick(r, 300.0, 200.0)
	hole := pick(r, 20*time.Second, 2*time.Second)
	lat := pick(r, 15*time.Second, 2*time.Second)
	gap := pick(r, 2*time.Second, time.Second)
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return fmt.Errorf("%w in the backend URL", errNoPort)
	}
	px, err := startProxy(pu.Host)
	if err != nil {
		return err
	}
	defer px.close()
	pu.Host = px.addr()
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10), lease 5s, through a TCP proxy: 200ms added latency each way for %s, then a %s blackhole, then every connection reset three times, %s apart", n, rate, lat, hole, gap)
	_, err = r.underLoad(ctx, withParams(pu.String(), leaseParams(r.backend)...), load{To: n, Batch: 10, Workers: 8, Rate: rate}, pick(r, 5*time.Second, time.Second), func(ctx context.Context, f *flow) error {
		r.logf("latency 200ms")
		px.setLatency(200 * time.Millisecond)
		if err := sleep(ctx, lat); err != nil {
			return err
		}
		px.setLatency(0)
		r.logf("blackhole for %s", hole)
		px.blackhole(true)
		err := sleep(ctx, hole)
		px.blackhole(false)
		if err != nil {
			return err
		}
		for range 3 {
			if err := sleep(ctx, gap); err != nil {
				return err
			}
			r.logf("reset %d connections", px.reset())
		}
		return nil
	})
	r.res.figure("connections accepted by the proxy", "%d", px.accepted.Load())
	r.res.figure("connections reset", "%d", px.resets.Load())
	return err
}

// percentile returns the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

// goodLatencies returns the first-delivery latencies of the good messages
// with index in [from, to) that were consumed.
func (t *tally) goodLatencies(from, to int) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for i := from; i < min(to, len(t.seen)); i++ {
		if t.published[i] == publishedGood && t.seen[i] > 0 {
			out = append(out, t.latency[i])
		}
	}
	return out
}
