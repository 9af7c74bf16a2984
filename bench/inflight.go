package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// InFlightFigure is the outcome of an inflight run (issue 16, target 5):
// what a claim costs with many slow messages held, and what the reaper of
// expired leases costs as the table grows.
type InFlightFigure struct {
	// Held is how many messages were held (leased, not settled) while the
	// claims were timed.
	Held int `json:"held"`
	// ClaimIdle, ClaimHeld and ClaimParked are the claim times of one
	// message: with nothing held; with Held messages just claimed, still
	// in the queue index (a claim walks past them: what every claim paid
	// before parking, whatever the messages' age); and once the first
	// lease extension parked them.
	ClaimIdle   *Latency `json:"claim_idle"`
	ClaimHeld   *Latency `json:"claim_held"`
	ClaimParked *Latency `json:"claim_parked"`
	// RowsSmall and RowsLarge are the table's rows when ReapSmallMs and
	// ReapLargeMs, the median time of one reaper pass with no lease
	// expired, were measured.
	RowsSmall   int64   `json:"rows_small"`
	RowsLarge   int64   `json:"rows_large"`
	ReapSmallMs float64 `json:"reap_small_ms"`
	ReapLargeMs float64 `json:"reap_large_ms"`
	// ScanLargeMs is one read of the large table for expired leases: what
	// the reaper did every half lease before leases were parked.
	ScanLargeMs float64 `json:"scan_large_ms"`
	// Expired leases returned by one reaper pass on the large table, and
	// the pass's time.
	Expired       int     `json:"expired"`
	ReapExpiredMs float64 `json:"reap_expired_ms"`
}

// reaperDriver is what the inflight scenario needs of the PostgreSQL
// driver beyond pubsub.Driver.
type reaperDriver interface {
	pubsub.Driver
	pubsub.LeaseExtender
	pgDriver
	ReapExpired(ctx context.Context) (int, error)
}

// inFlight holds Held messages the way a consumer with slow handlers does
// (claimed, their leases extended as the engine extends them) and times
// single-message claims of the same queue around it, then the reaper on a
// small and on a large table.
func (r *runner) inFlight(ctx context.Context, inst *instance, p Params, res *Result) error {
	d, ok := inst.backend.Driver().(reaperDriver)
	if !ok {
		return errors.New("inflight: not the PostgreSQL backend")
	}
	queue := r.env.queueName("inflight")
	if err := inst.prepare(ctx, queue); err != nil {
		return err
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	fig := &InFlightFigure{Held: p.Pending}
	res.InFlight = fig
	samples := r.sizes.ClaimSamples
	if fig.ClaimIdle, err = r.timeClaims(ctx, inst, d, queue, tmpl, samples); err != nil {
		return err
	}
	if _, err := r.preload(ctx, inst, queue, tmpl, p.Pending, r.sizes.BacklogPreloadMax.D()); err != nil {
		return err
	}
	held, err := holdMessages(ctx, d, queue, p.Pending)
	defer func() { _ = d.GiveBack(context.WithoutCancel(ctx), queue, held) }()
	if err != nil {
		return err
	}
	if fig.ClaimHeld, err = r.timeClaims(ctx, inst, d, queue, tmpl, samples); err != nil {
		return err
	}
	if err := d.ExtendLeases(ctx, queue, held); err != nil {
		return fmt.Errorf("extend leases: %w", err)
	}
	if fig.ClaimParked, err = r.timeClaims(ctx, inst, d, queue, tmpl, samples); err != nil {
		return err
	}
	stopExtending := keepExtending(ctx, d, queue, held)
	defer stopExtending()
	if err := r.reaperCosts(ctx, inst, d, tmpl, fig); err != nil {
		return err
	}
	res.Messages = int64(3 * samples)
	res.Note = inFlightNote(fig)
	return nil
}

// holdMessages claims n messages of queue through the driver and keeps
// them.
func holdMessages(ctx context.Context, d reaperDriver, queue string, n int) ([]*pubsub.Received, error) {
	var held []*pubsub.Received
	for len(held) < n {
		ms, err := d.ReceiveBatch(ctx, queue, min(1000, n-len(held)))
		held = append(held, ms...)
		if err != nil {
			return held, fmt.Errorf("hold %d messages: %w", n, err)
		}
		if len(ms) == 0 {
			return held, fmt.Errorf("hold %d messages: only %d ready", n, len(held))
		}
	}
	return held, nil
}

// keepExtending extends held's leases every LeaseInterval, as the engine
// does for what its handlers hold, until the returned stop is called.
func keepExtending(ctx context.Context, d reaperDriver, queue string, held []*pubsub.Received) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.LeaseInterval())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = d.ExtendLeases(ctx, queue, held)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// timeClaims publishes n messages to queue behind whatever it holds and
// times n claims of one message each through the driver, acking each.
func (r *runner) timeClaims(ctx context.Context, inst *instance, d reaperDriver, queue string, tmpl []byte, n int) (*Latency, error) {
	if _, err := r.preload(ctx, inst, queue, tmpl, n, r.sizes.BacklogPreloadMax.D()); err != nil {
		return nil, err
	}
	ns := make([]int64, 0, n)
	for range n {
		start := time.Now()
		ms, err := d.ReceiveBatch(ctx, queue, 1)
		ns = append(ns, time.Since(start).Nanoseconds())
		if err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("claim: nothing ready in %s", queue)
		}
		if err := d.Settle(ctx, queue, []pubsub.Settlement{{Msg: ms[0], Action: pubsub.SettleAck}}); err != nil {
			return nil, fmt.Errorf("ack: %w", err)
		}
	}
	return summarize(ns), nil
}

// reaperCosts times reaper passes with nothing expired on the table as it
// is (small: the held messages) and after loading a large backlog into
// another queue, a read of the whole large table (the reaper before
// parking), and a pass that returns expired parked leases.
func (r *runner) reaperCosts(ctx context.Context, inst *instance, d reaperDriver, tmpl []byte, fig *InFlightFigure) error {
	table := pgx.Identifier{d.Schema(), "quantum_flow_messages"}.Sanitize()
	var err error
	if fig.RowsSmall, fig.ReapSmallMs, err = reapPasses(ctx, d, table); err != nil {
		return err
	}
	big := r.env.queueName("inflight_table")
	if err := inst.prepare(ctx, big); err != nil {
		return err
	}
	if _, err := r.preload(ctx, inst, big, tmpl, r.sizes.InFlightTable, r.sizes.BacklogPreloadMax.D()); err != nil {
		return err
	}
	if fig.RowsLarge, fig.ReapLargeMs, err = reapPasses(ctx, d, table); err != nil {
		return err
	}
	start := time.Now()
	var n int64
	if err := d.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE status = 'processing' AND locked_until < now()`).Scan(&n); err != nil {
		return fmt.Errorf("table scan: %w", err)
	}
	fig.ScanLargeMs = msSince(start)
	// Leases that ran out: a thousand of the parked ones, made expired.
	if _, err := d.Pool().Exec(ctx, `UPDATE `+table+` SET locked_until = now() - interval '1 second', parked_until = now() - interval '1 second'
WHERE seq IN (SELECT seq FROM `+table+` WHERE parked_until IS NOT NULL LIMIT 1000)`); err != nil {
		return fmt.Errorf("expire leases: %w", err)
	}
	start = time.Now()
	fig.Expired, err = d.ReapExpired(ctx)
	fig.ReapExpiredMs = msSince(start)
	return err
}

// reapPasses counts the table's rows and returns the median time of 5
// reaper passes.
func reapPasses(ctx context.Context, d reaperDriver, table string) (int64, float64, error) {
	var rows int64
	if err := d.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&rows); err != nil {
		return 0, 0, err
	}
	var times []float64
	for range 5 {
		start := time.Now()
		if _, err := d.ReapExpired(ctx); err != nil {
			return 0, 0, fmt.Errorf("reap: %w", err)
		}
		times = append(times, msSince(start))
	}
	return rows, median(times), nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

func inFlightNote(f *InFlightFigure) string {
	return fmt.Sprintf("claim p50 %.2f ms idle, %.2f ms with %d held (unparked), %.2f ms once parked; reaper pass %.2f ms at %d rows, %.2f ms at %d rows (a read of that table: %.1f ms); %d expired leases returned in %.2f ms",
		f.ClaimIdle.P50Ms, f.ClaimHeld.P50Ms, f.Held, f.ClaimParked.P50Ms, f.ReapSmallMs, f.RowsSmall, f.ReapLargeMs, f.RowsLarge, f.ScanLargeMs, f.Expired, f.ReapExpiredMs)
}

// inFlightTargets are issue 16's rows from the inflight run: the claim
// p50 with the slow messages parked, and the reaper's pass on the large
// table against the small one (both with nothing expired).
func inFlightTargets(rep *Report, find func(string, string, func(Params) bool) *Result, scaled string) []Target {
	claim := Target{Issue: 16, Unit: "ms", Op: "≤", Threshold: 1, Note: scaled,
		Text: fmt.Sprintf("%d slow messages in flight: claim p50 ≤ 1 ms", rep.Sizes.InFlight)}
	reap := Target{Issue: 16, Unit: "×", Op: "≤", Threshold: 2, Note: scaled,
		Text: "The reaper's cost grows with expired leases, not with table size: a pass with none expired on the large table ≤ 2× on the small one"}
	r := find(ScenarioInFlight, SubjectPostgres, func(Params) bool { return true })
	if r == nil || r.Error != "" || r.InFlight == nil || r.InFlight.ClaimParked == nil || r.InFlight.ReapSmallMs <= 0 {
		claim.Detail = missingDetail(r, ScenarioInFlight, SubjectPostgres, "")
		reap.Detail = claim.Detail
		return []Target{claim, reap}
	}
	f := r.InFlight
	decide(&claim, f.ClaimParked.P50Ms)
	claim.Detail = fmt.Sprintf("claim p50 %.2f ms (p99 %.2f) with %d held and parked; %.2f ms before their first extension parked them; %.2f ms with none held",
		f.ClaimParked.P50Ms, f.ClaimParked.P99Ms, f.Held, f.ClaimHeld.P50Ms, f.ClaimIdle.P50Ms)
	decide(&reap, f.ReapLargeMs/f.ReapSmallMs)
	reap.Detail = fmt.Sprintf("a pass %.2f ms at %d rows, %.2f ms at %d rows (a read of that table, as the reaper made every half lease before: %.1f ms); %d expired leases returned in %.2f ms",
		f.ReapSmallMs, f.RowsSmall, f.ReapLargeMs, f.RowsLarge, f.ScanLargeMs, f.Expired, f.ReapExpiredMs)
	return []Target{claim, reap}
}

// inFlightTable is the report table of the inflight scenario.
func inFlightTable(subj func(*Result) string) ([]string, func(*Result) []string) {
	head := []string{"subject", "held", "claim p50 / p99 ms: none held", "held, unparked", "held, parked", "reaper pass ms: small table", "large table", "read of the large table ms", "expired returned (ms)"}
	return head, func(r *Result) []string {
		f := r.InFlight
		if r.Error != "" || f == nil || f.ClaimParked == nil {
			return append([]string{subj(r), fmt.Sprint(r.Pending), "error: " + mdEscape(r.Error)}, make([]string, len(head)-3)...)
		}
		lat := func(l *Latency) string { return fmt.Sprintf("%.2f / %.2f", l.P50Ms, l.P99Ms) }
		return []string{subj(r), fmt.Sprint(f.Held), lat(f.ClaimIdle), lat(f.ClaimHeld), lat(f.ClaimParked),
			fmt.Sprintf("%.2f (%d rows)", f.ReapSmallMs, f.RowsSmall), fmt.Sprintf("%.2f (%d rows)", f.ReapLargeMs, f.RowsLarge),
			fmt.Sprintf("%.1f", f.ScanLargeMs), fmt.Sprintf("%d (%.2f)", f.Expired, f.ReapExpiredMs)}
	}
}
