package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// VacuumFigures are the figures of a held-back-vacuum run (issue 16): the
// consume rate and the claim times without and during a transaction held
// open on the same database, and how the messages table's dead tuples
// came back down after it ended.
type VacuumFigures struct {
	// HoldSeconds is how long the transaction was held open; the rate
	// without it was measured for as long, just before.
	HoldSeconds float64 `json:"hold_seconds"`
	// RateWithout and RateDuring are the consume rates (the 4 workers'
	// messages) without the hold and during it; Ratio is During/Without.
	RateWithout float64 `json:"rate_without_hold_msgs_per_s"`
	RateDuring  float64 `json:"rate_during_hold_msgs_per_s"`
	Ratio       float64 `json:"ratio"`
	// HoldSlices are the consume rates of successive equal slices of the
	// hold: whether the rate falls as the hold goes on.
	HoldSlices []float64 `json:"hold_slice_rates,omitempty"`
	// ClaimWithout and ClaimDuring are the times of the probe's claims
	// (ReceiveBatch of one message) without the hold and during it. Nil
	// for a subject the probe cannot claim through (the raw baseline).
	ClaimWithout *Latency `json:"claim_without_hold,omitempty"`
	ClaimDuring  *Latency `json:"claim_during_hold,omitempty"`
	// DeadWithoutMax is the most dead tuples the messages table had
	// without the hold; DeadAtRelease what it had when the hold ended.
	DeadWithoutMax int64 `json:"dead_tuples_without_hold_max"`
	DeadAtRelease  int64 `json:"dead_tuples_at_release"`
	// DeadBound is the bound the dead tuples must come back under (see
	// vacuumDeadBound); DeadAtEnd is what they were when the run ended.
	DeadBound int64 `json:"dead_tuples_bound"`
	DeadAtEnd int64 `json:"dead_tuples_at_end"`
	// RecoverSeconds is how long after the hold the run went on
	// (consuming and publishing, the dead tuples watched).
	RecoverSeconds float64 `json:"recover_window_seconds"`
	// SecondsToBound is the time from the end of the hold until the dead
	// tuples were first seen under DeadBound; -1 when they were not within
	// RecoverSeconds.
	SecondsToBound float64 `json:"seconds_to_bound"`
	// RateAfter is the consume rate from the end of the hold to the end of
	// the run, AfterSlices its successive slices, and ClaimAfter the
	// probe's claims then: how fast consuming recovers.
	RateAfter   float64   `json:"rate_after_hold_msgs_per_s"`
	AfterSlices []float64 `json:"after_slice_rates,omitempty"`
	ClaimAfter  *Latency  `json:"claim_after_hold,omitempty"`
	// AutovacuumsDuring and AutovacuumsAfter count autovacuum runs of the
	// messages table during the hold and after it; FirstAutovacuumAfter is
	// the time from the end of the hold until the first run after it
	// finished (-1: none did while the run watched).
	AutovacuumsDuring    int64   `json:"autovacuums_during_hold"`
	AutovacuumsAfter     int64   `json:"autovacuums_after_hold"`
	FirstAutovacuumAfter float64 `json:"first_autovacuum_after_s"`
	// VacuumsDuring and VacuumsAfter count the VACUUM commands run on the
	// messages table (pg_stat_user_tables.vacuum_count: the backend's own,
	// vacuum_threshold; none in the raw loop) during the hold and after
	// it.
	VacuumsDuring int64 `json:"vacuums_during_hold"`
	VacuumsAfter  int64 `json:"vacuums_after_hold"`
	// PendingMin is the smallest backlog seen while the rates were
	// measured (published and preloaded minus consumed): the backlog must
	// not run out, or the rate measured would be the publishers'.
	PendingMin int64 `json:"pending_min"`
}

// vacuumProbeEvery is how often the claim probe claims. Every claim it
// makes is one more the backend serializes with the workers' (claimMu),
// so it is kept to ~50 a second, against ~500 of the workers' batches a
// second; that still gives 3000 claims a minute, enough for a p99.
const vacuumProbeEvery = 20 * time.Millisecond

// vacuumSampleEvery is how often the run reads the table's statistics
// (PostgreSQL's cumulative statistics are refreshed about every second).
const vacuumSampleEvery = 500 * time.Millisecond

// vacuumDB is what the held-back-vacuum run needs of a PostgreSQL
// subject: how to connect to its database, its messages table, and the
// driver to probe claims with (nil for the raw baseline).
type vacuumDB struct {
	conn          *pgx.ConnConfig
	schema, table string
	driver        pubsub.Driver
}

// vacuumDatabase finds the database and table of inst: the PostgreSQL
// backend (through its driver's Pool and Schema) or the raw pgx loop.
func vacuumDatabase(inst *instance) (vacuumDB, error) {
	if inst.backend != nil {
		if d, ok := inst.backend.Driver().(pgDriver); ok {
			return vacuumDB{conn: d.Pool().Config().ConnConfig, schema: d.Schema(), table: "quantum_flow_messages", driver: inst.backend.Driver()}, nil
		}
	}
	if raw, ok := inst.subject.(*pgxRaw); ok {
		return vacuumDB{conn: raw.pool.Config().ConnConfig, schema: "public", table: rawTable}, nil
	}
	return vacuumDB{}, errors.New("held-back vacuum: the subject is not on PostgreSQL")
}

// connect opens a connection of its own to the database, named so that
// it can be told apart in pg_stat_activity.
func (db vacuumDB) connect(ctx context.Context, name string) (*pgx.Conn, error) {
	cfg := db.conn.Copy()
	cfg.RuntimeParams["application_name"] = name
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("held-back vacuum: connect: %w", err)
	}
	return c, nil
}

// vacuumHold measures issue 16's held-back vacuum. A backlog is preloaded
// and kept at its size while p.Workers consumers take messages (no-op
// handler, ack) and publishers replace what they take. Phase A measures
// the consume rate for VacuumHold; phase B measures it again while
// another connection holds a REPEATABLE READ transaction with an xid
// open (the xmin horizon stays put, so no row deleted meanwhile can be
// vacuumed, nor its index entries killed: every claim walks past them);
// phase C ends the hold and watches the dead tuples come back under
// their bound, for up to VacuumRecover. A probe times claims throughout.
//
// Publishing keeps the backlog full rather than running at a fixed rate:
// at ~45k msg/s consumed, a fixed rate below the consume rate would drain
// a 200k backlog in seconds, long before two one-minute phases are over.
// The publishers thus share the machine with the consumers equally in
// both phases.
func (r *runner) vacuumHold(ctx context.Context, inst *instance, p Params, res *Result) error {
	db, err := vacuumDatabase(inst)
	if err != nil {
		return err
	}
	queue, loaded, err := r.preloadQueue(ctx, inst, p, r.sizes.VacuumBacklog, r.sizes.BacklogPreloadMax.D(), res)
	if err != nil {
		return err
	}
	stats, err := db.connect(ctx, "bench-vacuum-stats")
	if err != nil {
		return err
	}
	defer stats.Close(context.WithoutCancel(ctx))
	hold, err := db.connect(ctx, "bench-vacuum-hold")
	if err != nil {
		return err
	}
	defer hold.Close(context.WithoutCancel(ctx))

	ld, err := startVacuumLoad(ctx, inst, queue, p, int64(loaded))
	if err != nil {
		return err
	}
	if db.driver != nil {
		ld.startProbe(db.driver, queue)
	}
	run := &vacuumRun{db: db, stats: stats, load: ld, backlog: int64(loaded), progress: func(format string, args ...any) {
		fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}}
	err = run.phases(ctx, hold, r.sizes)
	ld.stop()
	if err == nil {
		err = ld.failure()
	}
	if err != nil {
		return err
	}
	run.fill(res, loaded)
	return nil
}

// vacuumLoad is the load of a held-back-vacuum run: consumers, the
// publishers that keep the backlog full, and the claim probe.
type vacuumLoad struct {
	consumed, published, probed atomic.Int64
	preloaded                   int64

	cancel        context.CancelFunc
	ctx           context.Context
	wg            sync.WaitGroup
	stopConsumers func()

	mu     sync.Mutex
	err    error
	claims []claimSample
}

// claimSample is one claim of the probe: when it started, how long it
// took.
type claimSample struct {
	at  time.Time
	dur time.Duration
}

// vacuumPublishers publish the replacements, in batches of 100 as the
// preload does.
const vacuumPublishers = 4

func startVacuumLoad(ctx context.Context, inst *instance, queue string, p Params, preloaded int64) (*vacuumLoad, error) {
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return nil, err
	}
	l := &vacuumLoad{preloaded: preloaded}
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.stopConsumers, err = inst.consume(l.ctx, queue, p.Workers, func([]byte) bool { l.consumed.Add(1); return true })
	if err != nil {
		l.cancel()
		return nil, err
	}
	var seq atomic.Int64
	seq.Store(preloaded)
	for range vacuumPublishers {
		l.wg.Go(func() {
			for l.ctx.Err() == nil {
				if l.pending() >= preloaded {
					sleepCtx(l.ctx, time.Millisecond)
					continue
				}
				batch := make([][]byte, 100)
				for i := range batch {
					batch[i] = newPayload(tmpl, seq.Add(1))
				}
				if err := inst.publish(l.ctx, queue, batch); err != nil {
					l.fail(fmt.Errorf("publish: %w", err))
					return
				}
				l.published.Add(int64(len(batch)))
			}
		})
	}
	return l, nil
}

// pending is the backlog: what was loaded and published, less what was
// taken (messages claimed and not yet handled count as pending).
func (l *vacuumLoad) pending() int64 {
	return l.preloaded + l.published.Load() - l.consumed.Load() - l.probed.Load()
}

func (l *vacuumLoad) fail(err error) {
	if l.ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

func (l *vacuumLoad) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// stop ends the publishers and the probe, then the consumers.
func (l *vacuumLoad) stop() {
	l.cancel()
	l.wg.Wait()
	l.stopConsumers()
}

// startProbe claims one message of queue every vacuumProbeEvery through
// the driver, as the backend's subscriptions do (ReceiveBatch: the claim's
// one round trip, after any claim of the workers' still walking the index,
// since the backend runs a queue's claims one at a time), times it, and
// acks the message. A message is always ready: the backlog is kept full.
func (l *vacuumLoad) startProbe(d pubsub.Driver, queue string) {
	l.wg.Go(func() {
		tick := time.NewTicker(vacuumProbeEvery)
		defer tick.Stop()
		for {
			select {
			case <-l.ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			got, err := d.ReceiveBatch(l.ctx, queue, 1)
			dur := time.Since(start)
			if len(got) > 0 {
				ss := make([]pubsub.Settlement, len(got))
				for i, m := range got {
					ss[i] = pubsub.Settlement{Msg: m, Action: pubsub.SettleAck}
				}
				// Acked even when ctx ended meanwhile: the driver hands
				// back what it claimed, and it is ours to settle.
				err = errors.Join(err, d.Settle(context.WithoutCancel(l.ctx), queue, ss))
				l.probed.Add(int64(len(got)))
				l.mu.Lock()
				l.claims = append(l.claims, claimSample{at: start, dur: dur})
				l.mu.Unlock()
			}
			if err != nil {
				l.fail(fmt.Errorf("claim probe: %w", err))
				return
			}
		}
	})
}

// claimsBetween summarizes the probe's claims started in [from, to).
func (l *vacuumLoad) claimsBetween(from, to time.Time) *Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ns []int64
	for _, c := range l.claims {
		if !c.at.Before(from) && c.at.Before(to) {
			ns = append(ns, int64(c.dur))
		}
	}
	return summarize(ns)
}

// vacuumSample is the state of a held-back-vacuum run at one moment.
type vacuumSample struct {
	at                time.Time
	consumed, pending int64
	// dead, live, autovacuums and vacuums are the messages table's
	// n_dead_tup, n_live_tup, autovacuum_count and vacuum_count;
	// lastAutovacuum is when autovacuum last finished with it (zero:
	// never).
	dead, live, autovacuums, vacuums int64
	lastAutovacuum                   time.Time
}

// vacuumRun is one held-back-vacuum run: its phases' samples and figures.
type vacuumRun struct {
	db       vacuumDB
	stats    *pgx.Conn
	load     *vacuumLoad
	backlog  int64
	progress func(format string, args ...any)

	samples []vacuumSample
	// The phases' boundaries: A from a[0] to a[1] (no hold), B to b (the
	// hold), C to c (after it).
	a    [2]vacuumSample
	b, c vacuumSample
	fig  VacuumFigures
}

// now is the run's state without the table's statistics.
func (v *vacuumRun) now() vacuumSample {
	return vacuumSample{at: time.Now(), consumed: v.load.consumed.Load(), pending: v.load.pending()}
}

// sample reads the table's statistics (on a connection of its own, each
// read its own transaction, so never a cached snapshot of them).
func (v *vacuumRun) sample(ctx context.Context) (vacuumSample, error) {
	s := v.now()
	var last *time.Time
	err := v.stats.QueryRow(ctx, `SELECT n_dead_tup, n_live_tup, autovacuum_count, vacuum_count, last_autovacuum FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`,
		v.db.schema, v.db.table).Scan(&s.dead, &s.live, &s.autovacuums, &s.vacuums, &last)
	if err != nil {
		return s, fmt.Errorf("held-back vacuum: statistics of %s.%s: %w", v.db.schema, v.db.table, err)
	}
	if last != nil {
		s.lastAutovacuum = *last
	}
	v.samples = append(v.samples, s)
	return s, nil
}

// watch samples until d has passed and returns the last sample. Every
// 10 s it reports progress.
func (v *vacuumRun) watch(ctx context.Context, phase string, d time.Duration) (vacuumSample, error) {
	start := v.now()
	end, report := start.at.Add(d), start
	for {
		sleepCtx(ctx, min(vacuumSampleEvery, time.Until(end)))
		if err := firstError(ctx.Err(), v.load.failure()); err != nil {
			return vacuumSample{}, err
		}
		s, err := v.sample(ctx)
		if err != nil {
			return s, err
		}
		if s.at.Sub(report.at) >= 10*time.Second {
			v.progress("           vacuum %s, %s in: %s msg/s, %d dead tuples, %d live, %d pending",
				phase, s.at.Sub(start.at).Round(time.Second), fmtRate(rateBetween(report, s)), s.dead, s.live, s.pending)
			report = s
		}
		if !s.at.Before(end) {
			return s, nil
		}
	}
}

// firstError returns the first error that is not nil.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// rateBetween is the consume rate from a to b.
func rateBetween(a, b vacuumSample) float64 {
	if d := b.at.Sub(a.at); d > 0 {
		return float64(b.consumed-a.consumed) / d.Seconds()
	}
	return 0
}

// phases runs the warm-up and phases A, B and C (see vacuumHold).
func (v *vacuumRun) phases(ctx context.Context, hold *pgx.Conn, sz Sizes) error {
	holdFor := sz.VacuumHold.D()
	// Subscriptions start and fill their buffers first.
	sleepCtx(ctx, min(holdFor/10, 5*time.Second))
	var err error
	if v.a[0], err = v.sample(ctx); err != nil {
		return err
	}
	if _, err := v.watch(ctx, "without hold", holdFor); err != nil {
		return err
	}
	tx, err := hold.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("held-back vacuum: begin the hold: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// txid_current gives the transaction an xid: with its snapshot it
	// holds the xmin horizon of the whole cluster from here on.
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xid); err != nil {
		return fmt.Errorf("held-back vacuum: take the snapshot: %w", err)
	}
	if v.a[1], err = v.sample(ctx); err != nil {
		return err
	}
	last, err := v.watch(ctx, "during hold", holdFor)
	if err != nil {
		return err
	}
	if err := tx.Rollback(ctx); err != nil {
		return fmt.Errorf("held-back vacuum: end the hold: %w", err)
	}
	// The hold ended here; the table was last seen just before.
	v.b = v.now()
	v.b.dead, v.b.live, v.b.autovacuums, v.b.vacuums, v.b.lastAutovacuum = last.dead, last.live, last.autovacuums, last.vacuums, last.lastAutovacuum
	v.fig.DeadBound = vacuumDeadBound(v.backlog)
	// The whole window, not only until the dead tuples are under their
	// bound: how the consume rate and the claims recover (once the horizon
	// moves, claims kill the index entries they walk past, and pages are
	// pruned as they are visited) tells as much as the dead tuples do.
	v.c, err = v.watch(ctx, "after hold", sz.VacuumRecover.D())
	return err
}

// vacuumDeadBound is the bound the dead tuples must come back under
// after the hold: as many as there are live rows (the backlog, which the
// publishers keep; n_live_tup is an estimate), plus 10k.
//
// Under load n_dead_tup climbs by about one per consumed message between
// vacuums (a claim's old row version is pruned on its page, a deleted row
// waits for vacuum): by 5-20k a second on the loaded 2-core machine of
// its first runs, by as many as are consumed in general. A vacuum
// brings it down to what died while it ran, which a tighter bound
// (10% of the live rows) would miss at that rate even right after a
// vacuum that removed all it could. Autovacuum visits a database once a
// naptime (a minute by default), and without a hold the table went above
// this bound between its visits too, until the PostgreSQL backend
// vacuumed the table itself (vacuum_threshold): what the target asks is
// that a vacuum able to remove what the hold left comes round within the
// minute.
func vacuumDeadBound(backlog int64) int64 {
	return 10_000 + backlog
}

// fill records the run's figures in res: the rate during the hold as its
// throughput, with its ratio to the rate without the hold.
func (v *vacuumRun) fill(res *Result, backlog int) {
	f := &v.fig
	f.HoldSeconds = v.b.at.Sub(v.a[1].at).Seconds()
	f.RecoverSeconds = v.c.at.Sub(v.b.at).Seconds()
	f.RateWithout = rateBetween(v.a[0], v.a[1])
	f.RateDuring = rateBetween(v.a[1], v.b)
	f.RateAfter = rateBetween(v.b, v.c)
	if f.RateWithout > 0 {
		f.Ratio = f.RateDuring / f.RateWithout
	}
	f.HoldSlices = sliceRates(v.between(v.a[1], v.b), 6)
	f.AfterSlices = sliceRates(v.between(v.b, v.c), 6)
	f.ClaimWithout = v.load.claimsBetween(v.a[0].at, v.a[1].at)
	f.ClaimDuring = v.load.claimsBetween(v.a[1].at, v.b.at)
	f.ClaimAfter = v.load.claimsBetween(v.b.at, v.c.at)
	v.fillDead()

	res.Messages = v.b.consumed - v.a[1].consumed
	res.Seconds = f.HoldSeconds
	res.Throughput = f.RateDuring
	if f.RateWithout > 0 {
		res.Ratios = append(res.Ratios, Ratio{Baseline: "no hold", Metric: "throughput", BaselineValue: f.RateWithout, Value: f.Ratio})
	}
	res.Vacuum = f
	res.Note = strings.TrimPrefix(res.Note+"; "+f.summary(backlog), "; ")
}

// between is from, the samples taken after it and before to, and to.
func (v *vacuumRun) between(from, to vacuumSample) []vacuumSample {
	out := []vacuumSample{from}
	for _, s := range v.samples {
		if s.at.After(from.at) && s.at.Before(to.at) {
			out = append(out, s)
		}
	}
	return append(out, to)
}

// fillDead fills in the dead tuples and autovacuum figures, and the
// smallest backlog seen.
func (v *vacuumRun) fillDead() {
	f := &v.fig
	f.DeadAtRelease, f.DeadAtEnd = v.b.dead, v.c.dead
	f.AutovacuumsDuring = v.b.autovacuums - v.a[1].autovacuums
	f.AutovacuumsAfter = v.c.autovacuums - v.b.autovacuums
	f.VacuumsDuring = v.b.vacuums - v.a[1].vacuums
	f.VacuumsAfter = v.c.vacuums - v.b.vacuums
	f.SecondsToBound, f.FirstAutovacuumAfter = -1, -1
	f.PendingMin = v.a[0].pending
	for _, s := range v.samples {
		switch {
		case s.at.Before(v.a[1].at):
			f.DeadWithoutMax = max(f.DeadWithoutMax, s.dead)
			f.PendingMin = min(f.PendingMin, s.pending)
		case s.at.Before(v.b.at):
			f.PendingMin = min(f.PendingMin, s.pending)
		default:
			if f.SecondsToBound < 0 && s.dead < f.DeadBound {
				f.SecondsToBound = s.at.Sub(v.b.at).Seconds()
			}
			if f.FirstAutovacuumAfter < 0 && s.lastAutovacuum.After(v.b.at) {
				f.FirstAutovacuumAfter = s.lastAutovacuum.Sub(v.b.at).Seconds()
			}
		}
	}
}

// sliceRates divides the time from the first point to the last into n
// equal slices and returns the consume rate of each, from the last point
// at or before its start to the last at or before its end (a slice with
// no point in it is merged into the next).
func sliceRates(points []vacuumSample, n int) []float64 {
	if len(points) < 2 {
		return nil
	}
	from, last := points[0].at, len(points)-1
	step := points[last].at.Sub(from) / time.Duration(n)
	var out []float64
	prev, next := points[0], 1
	for k := 1; k <= n; k++ {
		end := points[last]
		if k < n {
			boundary, found := from.Add(time.Duration(k)*step), false
			for ; next < last && !points[next].at.After(boundary); next++ {
				end, found = points[next], true
			}
			if !found {
				continue
			}
		}
		out = append(out, rateBetween(prev, end))
		prev = end
	}
	return out
}

// summary is the run in words, for the result's note.
func (f *VacuumFigures) summary(backlog int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backlog of %d kept full by publishing (lowest %d)", backlog, f.PendingMin)
	fmt.Fprintf(&b, "; without the hold %s msg/s%s", fmtRate(f.RateWithout), claimText(f.ClaimWithout))
	fmt.Fprintf(&b, "; during the %.0f s hold %s msg/s (%.2f×; by slice %s)%s", f.HoldSeconds, fmtRate(f.RateDuring), f.Ratio, fmtRateList(f.HoldSlices), claimText(f.ClaimDuring))
	fmt.Fprintf(&b, "; dead tuples: at most %d without the hold, %d at its end (autovacuum ran %d times during it, VACUUM commands %d)", f.DeadWithoutMax, f.DeadAtRelease, f.AutovacuumsDuring, f.VacuumsDuring)
	if f.SecondsToBound >= 0 {
		fmt.Fprintf(&b, ", under the bound of %d %.1f s after it, %d at the end", f.DeadBound, f.SecondsToBound, f.DeadAtEnd)
	} else {
		fmt.Fprintf(&b, ", not under the bound of %d within %.0f s after it, %d at the end", f.DeadBound, f.RecoverSeconds, f.DeadAtEnd)
	}
	fmt.Fprintf(&b, " (autovacuum ran %d times after it%s, VACUUM commands %d); in the %.0f s after the hold %s msg/s (by slice %s)%s",
		f.AutovacuumsAfter, autovacuumText(f.FirstAutovacuumAfter), f.VacuumsAfter, f.RecoverSeconds, fmtRate(f.RateAfter), fmtRateList(f.AfterSlices), claimText(f.ClaimAfter))
	return b.String()
}

// autovacuumText is ", the first finished x s after it", or nothing.
func autovacuumText(after float64) string {
	if after < 0 {
		return ""
	}
	return fmt.Sprintf(", the first finished %.1f s after it", after)
}

// claimText is ", claim p50 x ms, p99 y ms (n claims)", or nothing.
func claimText(l *Latency) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf(", claim p50 %s ms, p99 %s ms (%d claims)", fmtMs(l.P50Ms), fmtMs(l.P99Ms), l.Samples)
}

// vacuumTable is the held-back-vacuum table's header and cells.
func vacuumTable(subj func(*Result) string) ([]string, func(*Result) []string) {
	head := []string{"subject", "pending", "msg/s without hold", "msg/s during hold", "during / without", "claim p50 / p99 ms without", "claim p50 / p99 ms during",
		"dead tuples: most without / at the hold's end", "under the bound after"}
	claim := func(l *Latency) string {
		if l == nil {
			return "—"
		}
		return fmtMs(l.P50Ms) + " / " + fmtMs(l.P99Ms)
	}
	cells := func(r *Result) []string {
		f := r.Vacuum
		if r.Error != "" || f == nil {
			return []string{subj(r), fmt.Sprint(r.Pending), figure(r), "", "", "", "", "", ""}
		}
		after := fmt.Sprintf("%.1f s (bound %d)", f.SecondsToBound, f.DeadBound)
		if f.SecondsToBound < 0 {
			after = fmt.Sprintf("not within %.0f s: %d (bound %d)", f.RecoverSeconds, f.DeadAtEnd, f.DeadBound)
		}
		return []string{subj(r), fmt.Sprint(r.Pending), fmtRate(f.RateWithout), fmtRate(f.RateDuring), fmtRatio(f.Ratio),
			claim(f.ClaimWithout), claim(f.ClaimDuring), fmt.Sprintf("%d / %d", f.DeadWithoutMax, f.DeadAtRelease), after}
	}
	return head, cells
}

// vacuumTargets are issue 16's held-back-vacuum rows, on the PostgreSQL
// backend: the consume rate during the hold against the rate without it,
// the claim p99 during the hold (reported), and the time until the dead
// tuples were back under their bound.
func vacuumTargets(rep *Report, find func(string, string, func(Params) bool) *Result) []Target {
	var note string
	if rep.Mode == "quick" {
		note = fmt.Sprintf("quick mode: %d pending, %s hold, %s watched after it (autovacuum comes round once a minute); only the full run counts",
			rep.Sizes.VacuumBacklog, rep.Sizes.VacuumHold.D(), rep.Sizes.VacuumRecover.D())
	}
	hold := rep.Sizes.VacuumHold.D()
	rate := Target{Issue: 16, Unit: "×", Op: "≥", Threshold: 0.8, Note: note,
		Text: fmt.Sprintf("Held-back vacuum: consume (4 workers, backlog kept full by publishing) during a %s open transaction ≥ 0.8× without it", hold)}
	claim := Target{Issue: 16, Unit: "ms", Note: note,
		Text: "Held-back vacuum: claim p99 during the hold (reported)"}
	dead := Target{Issue: 16, Unit: "s", Op: "≤", Threshold: 60, Note: note,
		Text: "Held-back vacuum: dead tuples back under a bound (the backlog + 10k) within a minute after the hold"}
	r := find(ScenarioVacuum, SubjectPostgres, func(Params) bool { return true })
	if r == nil || r.Error != "" || r.Vacuum == nil {
		d := missingDetail(r, ScenarioVacuum, SubjectPostgres, "")
		rate.Detail, claim.Detail, dead.Detail = d, d, d
		return []Target{rate, claim, dead}
	}
	f := r.Vacuum
	rate.Figure = f.Ratio
	rate.Detail = fmt.Sprintf("postgres %s msg/s during the hold vs %s msg/s without (%d pending; by slice of the hold %s)",
		fmtRate(f.RateDuring), fmtRate(f.RateWithout), r.Pending, fmtRateList(f.HoldSlices))
	if raw := find(ScenarioVacuum, SubjectPgx, func(Params) bool { return true }); raw != nil && raw.Error == "" && raw.Vacuum != nil {
		rate.Detail += fmt.Sprintf("; raw pgx loop for reference: %s vs %s msg/s (%.2f×)", fmtRate(raw.Vacuum.RateDuring), fmtRate(raw.Vacuum.RateWithout), raw.Vacuum.Ratio)
	}
	rateMet := compare(rate.Figure, rate.Op, rate.Threshold)
	rate.Met = &rateMet
	if l := f.ClaimDuring; l != nil {
		claim.Figure = l.P99Ms
		claim.Detail = fmt.Sprintf("during the hold: p50 %s ms, p99 %s ms, max %s ms over %d claims%s",
			fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.MaxMs), l.Samples, strings.Replace(claimText(f.ClaimWithout), ", claim", "; without it:", 1))
		measured := true
		claim.Met = &measured
	} else {
		claim.Detail = "no claim timed during the hold"
	}
	dead.Detail = fmt.Sprintf("%d dead tuples at the hold's end (at most %d without it); bound %d", f.DeadAtRelease, f.DeadWithoutMax, f.DeadBound)
	if f.SecondsToBound >= 0 {
		dead.Figure = f.SecondsToBound
		dead.Detail += fmt.Sprintf(", under it %.1f s after the hold (%d at the end of the %.0f s watched)", f.SecondsToBound, f.DeadAtEnd, f.RecoverSeconds)
	} else {
		dead.Figure = f.RecoverSeconds
		dead.Detail += fmt.Sprintf(", not under it within the %.0f s watched: still %d at the end", f.RecoverSeconds, f.DeadAtEnd)
	}
	dead.Detail += fmt.Sprintf(" (autovacuum ran %d times during the hold, %d after it%s; it visits a database once a naptime, 1 min by default)",
		f.AutovacuumsDuring, f.AutovacuumsAfter, autovacuumText(f.FirstAutovacuumAfter))
	deadMet := f.SecondsToBound >= 0 && compare(dead.Figure, dead.Op, dead.Threshold)
	dead.Met = &deadMet
	return []Target{rate, claim, dead}
}

// fmtRates is "40.1k, 38.2k, …".
func fmtRateList(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmtRate(r)
	}
	return strings.Join(parts, ", ")
}
