package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// manyInstances is the issue's instance count (issue 16: "200 Singularity
// instances and CentralCloud"): the largest count held at delivered/offered
// 1.00 must reach it.
const manyInstances = 200

// instances is the mixed run at the large profile with p.Instances
// Singularity routers and CentralCloud, all in this process on the one
// backend it opens (one connection pool and one LISTEN connection on
// PostgreSQL, one connection on NATS), while the connections the server
// sees are sampled: the figure is the largest sample.
func (r *runner) instances(ctx context.Context, def *subjectDef, p Params, res *Result) error {
	inst, err := def.open(ctx, r.env)
	if err != nil {
		return err
	}
	defer inst.close()
	counter, err := r.connectionCounter(ctx, def, inst)
	if err != nil {
		return err
	}
	defer counter.close()
	res.ConnectionBudget = counter.budget(p.Instances)
	window := r.sizes.InstancesWindow.D()
	var peak atomic.Int64
	var sampleErr error
	var cpuNote string
	sample := func(ctx context.Context) {
		// The CPU the machine had while the routers ran: at 200 instances
		// the one figure that says whether the machine or the code is the
		// limit.
		cpu := startCPU()
		defer func() { cpuNote = cpu.note() }()
		// Five samples a window at least: the pool grows and shrinks with
		// the load, and the largest is what the server must allow.
		tick := time.NewTicker(max(100*time.Millisecond, window/5))
		defer tick.Stop()
		for {
			n, err := counter.count(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				sampleErr = err
				return
			case err == nil && int64(n) > peak.Load():
				peak.Store(int64(n))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
	err = r.mixedLoad(ctx, inst.backend, p, window, sample, res)
	res.Connections = int(peak.Load())
	if sampleErr != nil {
		err = errors.Join(err, fmt.Errorf("count connections: %w", sampleErr))
	}
	res.CPU = cpuNote
	notes := []string{cpuNote, res.Note}
	if counter.note != nil {
		notes = append([]string{counter.note()}, notes...)
	}
	res.Note = strings.Join(slices.DeleteFunc(notes, func(s string) bool { return s == "" }), "; ")
	if err == nil && res.Connections == 0 {
		err = errors.New("no connection counted")
	}
	return err
}

// connCounter counts the connections a backend holds on its server.
type connCounter struct {
	count  func(ctx context.Context) (int, error)
	budget func(instances int) int
	close  func()
	// note, when set, describes how the connections were used since the
	// counter was made (PostgreSQL: waits for a pool connection).
	note func() string
}

// connectionCounter counts inst's connections. On PostgreSQL: the rows of
// pg_stat_activity on the backend's database, other than the counting
// connection itself (the pool's connections and the LISTEN connection);
// the budget is 2 per instance plus CentralCloud's pool, which here is
// the pool of the whole process: every router shares the one backend. On
// NATS: the embedded server's client connections; the budget is 1 per
// instance.
func (r *runner) connectionCounter(ctx context.Context, def *subjectDef, inst *instance) (*connCounter, error) {
	switch def.needs {
	case "nats", "nats_sync":
		srv := r.env.nats
		if def.needs == "nats_sync" {
			srv = r.env.natsSync
		}
		if srv == nil {
			return nil, errors.New("count connections: embedded NATS unavailable")
		}
		ns := srv.NATSServer()
		return &connCounter{
			count:  func(context.Context) (int, error) { return ns.NumClients(), nil },
			budget: func(n int) int { return n },
			close:  func() {},
		}, nil
	case "postgres":
		d, ok := inst.backend.Driver().(interface{ Pool() *pgxpool.Pool })
		if !ok {
			return nil, errors.New("count connections: the backend is not on PostgreSQL")
		}
		cfg := d.Pool().Config().ConnConfig.Copy()
		cfg.RuntimeParams["application_name"] = "quantumflow-bench-connections"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("count connections: connect: %w", err)
		}
		before := d.Pool().Stat()
		pool := int(before.MaxConns())
		return &connCounter{
			count: func(ctx context.Context) (int, error) {
				var n int
				err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
				return n, err
			},
			budget: func(n int) int { return 2*n + pool },
			close:  func() { _ = conn.Close(context.WithoutCancel(ctx)) },
			note:   func() string { return poolNote(before, d.Pool().Stat()) },
		}, nil
	}
	return nil, fmt.Errorf("count connections: %s is not on PostgreSQL or NATS", def.Name)
}

// poolNote says how often the pool made an acquire wait between two of
// its stats: with every router on one pool, that is where a load the pool
// cannot carry shows.
func poolNote(before, after *pgxpool.Stat) string {
	acquires := after.AcquireCount() - before.AcquireCount()
	if acquires <= 0 {
		return ""
	}
	waited := after.EmptyAcquireCount() - before.EmptyAcquireCount()
	mean := (after.AcquireDuration() - before.AcquireDuration()) / time.Duration(acquires)
	return fmt.Sprintf("pool of %d: %d acquires, %.0f%% waited for a connection, mean acquire %s", after.MaxConns(), acquires, 100*float64(waited)/float64(acquires), mean.Round(time.Microsecond))
}

// instancesTargets are issue 16's many-instances rows, per backend: at the
// largest count planned, delivered/offered 1.00 and the connections within
// their budget; and the largest count held at 1.00, planned or searched
// (see searchInstances), against the issue's 200.
func instancesTargets(rep *Report) []Target {
	counts := rep.Sizes.InstanceCounts
	if len(counts) == 0 {
		return nil
	}
	largest := slices.Max(counts)
	var note string
	if rep.Mode == "quick" {
		note = fmt.Sprintf("quick mode: %v instances, windows of %s; only the full run counts", counts, rep.Sizes.InstancesWindow.D())
	}
	var out []Target
	for _, subject := range []string{SubjectPostgres, SubjectNATS} {
		budget := "2 per instance plus CentralCloud's pool (in process, the one backend's pool: all routers share it)"
		if subject == SubjectNATS {
			budget = "1 per instance"
		}
		delivered := Target{Issue: 16, Unit: "×", Op: "≥", Threshold: 1, Note: note,
			Text: fmt.Sprintf("Many instances: %d Singularity instances and CentralCloud at the large profile's per-instance load, in process on one backend: delivered/offered 1.00 [%s]", largest, subject)}
		conns := Target{Issue: 16, Unit: "connections", Op: "≤", Note: note,
			Text: fmt.Sprintf("Many instances: connections at %d instances within the budget, %s [%s]", largest, budget, subject)}
		delivered.Detail = missingDetail(nil, ScenarioInstances, subject, "")
		conns.Detail = delivered.Detail
		if r := findResult(rep, ScenarioInstances, subject, func(p Params) bool { return p.Instances == largest }); r != nil {
			largestTargets(r, &delivered, &conns)
		}
		out = append(out, delivered, conns, heldTarget(rep, subject, note))
	}
	return out
}

// largestTargets fills the delivered and connections rows from r, the
// run at the largest count planned.
func largestTargets(r *Result, delivered, conns *Target) {
	ratio, ok := deliveredRatio(r)
	if !ok {
		delivered.Detail = missingDetail(r, ScenarioInstances, r.Subject, "")
		conns.Detail = delivered.Detail
		return
	}
	delivered.Detail = fmt.Sprintf("%s, %d instances: %d delivered of %d offered msg/s, %d missing; %d connections (budget %d)",
		r.Subject, r.Instances, int(r.Throughput), int(r.Rate), r.Missing, r.Connections, r.ConnectionBudget)
	if r.Latency != nil {
		delivered.Detail += fmt.Sprintf("; proposal→result p50 %.0f ms, p99 %.0f ms from the intended send time", r.Latency.P50Ms, r.Latency.P99Ms)
	}
	if r.CPU != "" {
		delivered.Detail += "; " + r.CPU
	}
	decide(delivered, ratio)
	conns.Threshold = float64(r.ConnectionBudget)
	conns.Detail = fmt.Sprintf("%s, %d instances: at most %d connections in the samples, budget %d", r.Subject, r.Instances, r.Connections, r.ConnectionBudget)
	decide(conns, float64(r.Connections))
}

// heldTarget is the row of the largest instance count held at
// delivered/offered 1.00 on subject, over every count run: planned and
// searched.
func heldTarget(rep *Report, subject, note string) Target {
	held := Target{Issue: 16, Unit: "instances", Op: "≥", Threshold: manyInstances, Note: note,
		Text: fmt.Sprintf("Many instances: the largest instance count held at delivered/offered 1.00 ≥ %d [%s]", manyInstances, subject)}
	var runs []*Result
	for _, r := range rep.Results {
		if r != nil && r.Scenario == ScenarioInstances && r.Subject == subject {
			runs = append(runs, r)
		}
	}
	slices.SortFunc(runs, func(a, b *Result) int { return a.Instances - b.Instances })
	var parts []string
	measured := false
	for _, r := range runs {
		ratio, ok := deliveredRatio(r)
		if !ok {
			parts = append(parts, fmt.Sprintf("%d: %s", r.Instances, missingDetail(r, ScenarioInstances, subject, "")))
			continue
		}
		measured = true
		part := fmt.Sprintf("%d: %.4f", r.Instances, ratio)
		if r.Latency != nil {
			part += fmt.Sprintf(" (p99 %.0f ms)", r.Latency.P99Ms)
		}
		parts = append(parts, part)
		if ratio >= 1 && float64(r.Instances) > held.Figure {
			held.Figure = float64(r.Instances)
		}
	}
	held.Detail = fmt.Sprintf("%s delivered/offered by instance count: %s", subject, strings.Join(parts, ", "))
	if c := rep.Sizes.InstanceCeiling; c > 0 && int(held.Figure) == c {
		held.Detail += fmt.Sprintf("; the search stops at %d instances", c)
	}
	if measured {
		decide(&held, held.Figure)
	}
	return held
}

// findResult is the first result of subject in scenario whose parameters
// match.
func findResult(rep *Report, scenario, subject string, match func(Params) bool) *Result {
	for _, r := range rep.Results {
		if r != nil && r.Scenario == scenario && r.Subject == subject && match(r.Params) {
			return r
		}
	}
	return nil
}

// deliveredRatio is a mixed or instances result's delivered/offered.
func deliveredRatio(r *Result) (float64, bool) {
	if r == nil || r.Error != "" {
		return 0, false
	}
	for _, x := range r.Ratios {
		if x.Metric == "delivered" {
			return x.Value, true
		}
	}
	return 0, false
}

// instancesTable is the instances scenario's table.
func instancesTable(subj func(*Result) string) ([]string, func(*Result) []string) {
	head := []string{"subject", "instances", "offered msg/s", "delivered msg/s", "delivered/offered", "missing", "connections / budget", "proposal→result p50 / p99 ms"}
	return head, func(r *Result) []string {
		if r.Error != "" {
			return append([]string{subj(r), fmt.Sprint(r.Instances), "error: " + mdEscape(r.Error)}, make([]string, len(head)-3)...)
		}
		ratio, _ := deliveredRatio(r)
		// The round trip's latency runs from each proposal's intended send
		// time: seconds of it mean the sends fell behind the offered rate,
		// which delivered/offered (counted after the drain) does not show.
		var rt string
		if r.Latency != nil {
			rt = fmt.Sprintf("%.1f / %.1f", r.Latency.P50Ms, r.Latency.P99Ms)
		}
		return []string{subj(r), fmt.Sprint(r.Instances), fmt.Sprintf("%.0f", r.Rate), fmt.Sprintf("%.0f", r.Throughput),
			fmt.Sprintf("%.3f", ratio), fmt.Sprint(r.Missing), fmt.Sprintf("%d / %d", r.Connections, r.ConnectionBudget), rt}
	}
}
