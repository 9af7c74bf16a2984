package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	qfnats "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
)

// SteadyFigure is what a steady run measured besides its overall latency
// (Result.Latency, over every message of the run).
type SteadyFigure struct {
	// MaxRate is the measured maximum the run offers half of: msg/s
	// consumed while steadyPublishers publishers (one message per call)
	// and the workers ran flat out together for the probe.
	MaxRate float64 `json:"max_rate_msgs_per_s"`
	// Offered counts the messages of the schedule; Delivered those
	// received (each counted once) by the end of the drain.
	Offered   int64 `json:"offered"`
	Delivered int64 `json:"delivered"`
	// Window is the length of each window: messages belong to the window
	// of their intended send time.
	Window Duration `json:"window"`
	// Windows are the run's consecutive windows, in order.
	Windows []WindowFigure `json:"windows"`
	// Storage says what WindowFigure.SizeBytes measures on this backend.
	Storage string `json:"storage"`
	// StartSizeBytes is that size when the schedule starts: after the
	// maximum's backlog is drained and, on PostgreSQL, the table
	// vacuumed; 0 when it could not be read.
	StartSizeBytes int64 `json:"start_size_bytes"`
	// SizeFloorBytes is the storage's allocation unit, if it has one that
	// matters: sizes below it count as it when the first window and the
	// last are compared (see gauge.floor).
	SizeFloorBytes int64 `json:"size_floor_bytes,omitempty"`
}

// WindowFigure is one window of a steady run.
type WindowFigure struct {
	// FromS is the window's start, in seconds after the first intended
	// send.
	FromS float64 `json:"from_s"`
	// Messages counts the window's messages received; Missing those never
	// received, which count in Latency with the time they had waited.
	Messages int64    `json:"messages"`
	Missing  int64    `json:"missing,omitempty"`
	Latency  *Latency `json:"latency,omitempty"`
	// SizeBytes is the largest storage size (SteadyFigure.Storage) read
	// in the window, read every sizeSampleEvery; 0 when it could not be
	// read (SizeDetail says why).
	SizeBytes int64 `json:"size_bytes"`
	// SizeDetail breaks that size down (heap, indexes, tuples; stream
	// messages and bytes).
	SizeDetail string `json:"size_detail,omitempty"`
}

// steadyPublishers is the publisher concurrency of the steady run's
// maximum: the same as the senders of its fixed-rate phase (one message
// per call each), so that half the maximum is within their reach.
const steadyPublishers = latencySenders

// steady measures the steady state (issue 16): the maximum rate of
// publishing and consuming together, then half of it offered on an
// open-loop schedule for the Steady duration, with latency, deliveries
// and the backend's storage size recorded per window.
func (r *runner) steady(ctx context.Context, inst *instance, def *subjectDef, p Params, res *Result) error {
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	maxRate, probeNote, err := r.steadyMax(ctx, inst, p, tmpl)
	if err != nil {
		return fmt.Errorf("maximum: %w", err)
	}
	queue := r.env.queueName("steady")
	if err := inst.prepare(ctx, queue); err != nil {
		return fmt.Errorf("prepare %s: %w", queue, err)
	}
	g, startSize := r.openGauge(ctx, inst, def, queue)
	defer g.close()
	h, publish, stop, err := probedConsumer(ctx, inst, queue, p.Workers, tmpl)
	if err != nil {
		return err
	}
	defer stop()
	s := newSchedule(maxRate/2, r.sizes.Steady.D())
	tr := s.tracker()
	h.tr.Store(tr)
	window := r.sizes.SteadyWindow.D()
	windows := max(1, int(r.sizes.Steady.D()/window))
	sizes := make([]storageSample, windows)
	var wg sync.WaitGroup
	wg.Go(func() { r.sampleSizes(ctx, g, def.Name, s.start, window, sizes) })
	sendErr := sendAtRate(ctx, s.start, s.n, s.interval, latencySenders, publish)
	wg.Wait()
	tr.wait(s.start.Add(time.Duration(s.n)*s.interval + r.sizes.Drain.D()))
	fig := &SteadyFigure{MaxRate: maxRate, Offered: int64(s.n), Window: Duration(window), Storage: g.what, StartSizeBytes: startSize.bytes, SizeFloorBytes: g.floor}
	fillSteady(res, s, tr, time.Now(), fig, sizes, probeNote)
	if sendErr != nil {
		return fmt.Errorf("send: %w", sendErr)
	}
	if res.Messages == 0 {
		return errNoMessages
	}
	return nil
}

// fillSteady records a steady run's figures in res: over the whole run
// and by window, messages still missing at end counting with the time
// they had waited.
func fillSteady(res *Result, s schedule, tr *tracker, end time.Time, fig *SteadyFigure, sizes []storageSample, probeNote string) {
	fig.Windows = windowFigures(tr, end, fig.Window.D(), len(sizes))
	for i := range fig.Windows {
		fig.Windows[i].SizeBytes, fig.Windows[i].SizeDetail = sizes[i].bytes, sizes[i].detail
	}
	lat, missing := tr.result(end)
	fig.Delivered = tr.received.Load()
	res.Steady = fig
	res.Rate = float64(time.Second) / float64(s.interval)
	res.Latency = lat
	res.Missing = missing
	res.Duplicates = tr.dups.Load()
	res.Messages = fig.Delivered
	res.Seconds = (time.Duration(s.n) * s.interval).Seconds()
	res.Throughput = float64(res.Messages) / res.Seconds
	res.Ratios = []Ratio{{Baseline: "offered load", Metric: "delivered", BaselineValue: res.Rate, Value: float64(fig.Delivered) / float64(fig.Offered)}}
	notes := []string{fmt.Sprintf("offered %s msg/s, half the measured maximum of %s msg/s (%d publishers of 1 message per call and %s flat out); %d of %d delivered",
		fmtRate(res.Rate), fmtRate(fig.MaxRate), steadyPublishers, plural(res.Workers, "worker"), fig.Delivered, fig.Offered)}
	if probeNote != "" {
		notes = append(notes, probeNote)
	}
	var p99s, sizeCells []string
	for _, w := range fig.Windows {
		if w.Latency != nil {
			p99s = append(p99s, fmtMs(w.Latency.P99Ms))
		}
		sizeCells = append(sizeCells, fmtSize(w.SizeBytes))
	}
	notes = append(notes, fmt.Sprintf("p99 ms by %s window: %s", fig.Window.D(), strings.Join(p99s, ", ")),
		fmt.Sprintf("%s at the start %s, the largest of each window: %s", fig.Storage, fmtSize(fig.StartSizeBytes), strings.Join(sizeCells, ", ")))
	if n := len(fig.Windows); n > 0 && fig.Windows[n-1].SizeDetail != "" {
		notes = append(notes, "the last window's largest: "+fig.Windows[n-1].SizeDetail)
	}
	res.Note = strings.Join(notes, "; ")
}

// windowFigures splits the tracker's messages into windows of their
// intended send time (the first window starting at the tracker's start)
// and summarizes each, a message still missing at end counting with the
// time it had waited, as tracker.result counts it. Messages beyond the
// last window (there are none when the schedule's length is windows
// windows) count in the last.
func windowFigures(t *tracker, end time.Time, window time.Duration, windows int) []WindowFigure {
	ns := make([][]int64, windows)
	figs := make([]WindowFigure, windows)
	for i := range t.lat {
		w := min(int(time.Duration(i)*t.interval/window), windows-1)
		v := t.lat[i].Load()
		if v == 0 {
			figs[w].Missing++
			v = int64(max(end.Sub(t.intended(int64(i))), 0)) + 1
		} else {
			figs[w].Messages++
		}
		ns[w] = append(ns[w], v-1)
	}
	for w := range figs {
		figs[w].FromS = (time.Duration(w) * window).Seconds()
		figs[w].Latency = summarize(ns[w])
	}
	return figs
}

// steadyMax measures the maximum a steady run offers half of: the rate
// consumed while steadyPublishers publishers (one message per call, as
// the steady senders publish) and p.Workers consumers go flat out
// together on a queue of its own, over the SteadyProbe window after a
// warm-up. The consumed rate, not the published one: what the backend
// delivers is what it can sustain. The backlog the probe leaves is
// drained (within the Drain bound) before the steady run starts, so that
// the run neither receives it nor stores it; a rest is noted.
func (r *runner) steadyMax(ctx context.Context, inst *instance, p Params, tmpl []byte) (float64, string, error) {
	queue := r.env.queueName("steady_max")
	if err := inst.prepare(ctx, queue); err != nil {
		return 0, "", fmt.Errorf("prepare %s: %w", queue, err)
	}
	var consumed atomic.Int64
	ready := make(chan struct{})
	var readyOnce sync.Once
	stop, err := inst.consume(ctx, queue, p.Workers, func(pl []byte) bool {
		if seq, ok := payloadSeq(pl); ok && seq == probeSeq {
			readyOnce.Do(func() { close(ready) })
			return true
		}
		consumed.Add(1)
		return true
	})
	if err != nil {
		return 0, "", err
	}
	defer stop()
	if err := awaitProbe(ctx, ready, func() error { return inst.publish(ctx, queue, [][]byte{newPayload(tmpl, probeSeq)}) }); err != nil {
		return 0, "", err
	}
	published, stopPublishers := publishFlatOut(ctx, inst, queue, tmpl, steadyPublishers)
	sleepCtx(ctx, r.sizes.Warmup.D())
	c0, t0 := consumed.Load(), time.Now()
	sleepCtx(ctx, r.sizes.SteadyProbe.D())
	c1, t1 := consumed.Load(), time.Now()
	if err := stopPublishers(); err != nil {
		return 0, "", fmt.Errorf("publish to %s: %w", queue, err)
	}
	for bound := time.Now().Add(r.sizes.Drain.D()); consumed.Load() < published.Load() && time.Now().Before(bound) && ctx.Err() == nil; {
		sleepCtx(ctx, 10*time.Millisecond)
	}
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	rate := float64(c1-c0) / t1.Sub(t0).Seconds()
	if rate <= 0 {
		return 0, "", fmt.Errorf("%w in %s on %s", errNoMessages, r.sizes.SteadyProbe.D(), queue)
	}
	var note string
	if left := published.Load() - consumed.Load(); left > 0 {
		note = fmt.Sprintf("%d of the maximum probe's messages left unconsumed after %s", left, r.sizes.Drain.D())
	}
	return rate, note, nil
}

// publishFlatOut starts publishers publishing one message per call to
// queue back to back, counting in published the messages whose publish
// returned. stop ends them, waits, and returns the first error.
func publishFlatOut(ctx context.Context, inst *instance, queue string, tmpl []byte, publishers int) (published *atomic.Int64, stop func() error) {
	runCtx, cancel := context.WithCancel(ctx)
	published = new(atomic.Int64)
	var seq atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for runCtx.Err() == nil {
				if err := inst.publish(runCtx, queue, [][]byte{newPayload(tmpl, seq.Add(1))}); err != nil {
					if runCtx.Err() == nil {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					return
				}
				published.Add(1)
			}
		})
	}
	return published, func() error {
		cancel()
		wg.Wait()
		return firstErr
	}
}

// storageSample is one reading of a storage gauge.
type storageSample struct {
	bytes  int64
	detail string
}

// gauge reads the size of what a backend stores for a steady run.
type gauge struct {
	// what names the size read ("table plus indexes of …").
	what string
	// floor, if set, is the unit the storage allocates in: a size within
	// it says where the storage is in its cycle, not whether it grew.
	floor int64
	read  func(ctx context.Context) (storageSample, error)
	// reset, if set, clears what the run before left in the storage
	// before the steady run starts.
	reset func(ctx context.Context) error
	close func()
}

// openGauge returns the gauge of the storage the steady target bounds,
// reset and read once: the size at the start. A backend whose size cannot
// be read still has its latency and deliveries measured: its gauge fails
// every reading with the reason, which the size rows then give.
func (r *runner) openGauge(ctx context.Context, inst *instance, def *subjectDef, queue string) (*gauge, storageSample) {
	g, err := r.storageGauge(ctx, inst, def, queue)
	if err == nil && g.reset != nil {
		if err = g.reset(ctx); err != nil {
			g.close()
		}
	}
	if err != nil {
		return &gauge{what: "size (not read)", read: func(context.Context) (storageSample, error) { return storageSample{}, err }, close: func() {}}, storageSample{}
	}
	s, _ := g.read(ctx)
	return g, s
}

// sampleSizes reads g every sizeSampleEvery of each window of a schedule
// starting at start, and keeps in sizes (one per window) the largest
// reading of the window; it reports progress at each window's end: a
// 10-minute run says how far it got. Reading while the schedule runs
// compares the first window and the last in the same state, traffic
// flowing. The largest, not the reading at the window's end: a table the
// backend vacuums and truncates moves between a fraction and a multiple
// of its typical size within a window, and two end readings compared two
// points of that cycle (16 to 51 MiB between windows in one PostgreSQL
// run), not growth.
func (r *runner) sampleSizes(ctx context.Context, g *gauge, subject string, start time.Time, window time.Duration, sizes []storageSample) {
	every := min(sizeSampleEvery, window/4)
	for i := range sizes {
		end := start.Add(time.Duration(i+1) * window)
		for {
			sleepCtx(ctx, min(every, time.Until(end)))
			if ctx.Err() != nil {
				return
			}
			s, err := g.read(ctx)
			if err != nil {
				s = storageSample{detail: "not read: " + err.Error()}
			}
			if s.bytes >= sizes[i].bytes {
				sizes[i] = s
			}
			if !time.Now().Before(end) {
				break
			}
		}
		fmt.Fprintf(r.cfg.Progress, "           steady %s: window %d/%d done, %s at most %s\n", subject, i+1, len(sizes), g.what, fmtSize(sizes[i].bytes))
	}
}

// sizeSampleEvery is how often a steady run reads the storage size.
const sizeSampleEvery = 5 * time.Second

// storageGauge returns the gauge of the storage the steady target bounds:
// on PostgreSQL the backend's message table with its indexes (all queues
// share it); on NATS the queue's stream as the embedded server stores it
// on disk.
func (r *runner) storageGauge(ctx context.Context, inst *instance, def *subjectDef, queue string) (*gauge, error) {
	switch def.needs {
	case "postgres":
		return postgresGauge(ctx, inst)
	case "nats", "nats_sync":
		srv := r.env.nats
		if def.needs == "nats_sync" {
			srv = r.env.natsSync
		}
		return natsGauge(ctx, srv, inst.url, queue)
	}
	return nil, fmt.Errorf("no storage gauge for %s", def.Name)
}

// postgresGauge reads pg_total_relation_size of the backend's
// quantum_flow_messages (heap, indexes and TOAST) in its schema, on a
// connection of its own.
func postgresGauge(ctx context.Context, inst *instance) (*gauge, error) {
	d, ok := inst.backend.Driver().(pgDriver)
	if !ok {
		return nil, errors.New("storage gauge: not the PostgreSQL backend")
	}
	schema := d.Schema()
	conn, err := pgx.ConnectConfig(ctx, d.Pool().Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("storage gauge: %w", err)
	}
	const query = `SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid),
		coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE n.nspname = $1 AND c.relname = 'quantum_flow_messages'`
	read := func(ctx context.Context) (storageSample, error) {
		var total, heap, indexes, live, dead int64
		if err := conn.QueryRow(ctx, query, schema).Scan(&total, &heap, &indexes, &live, &dead); err != nil {
			return storageSample{}, fmt.Errorf("size of %s.quantum_flow_messages: %w", schema, err)
		}
		return storageSample{bytes: total, detail: fmt.Sprintf("heap %s, indexes %s, ~%d live and ~%d dead tuples (statistics)", fmtSize(heap), fmtSize(indexes), live, dead)}, nil
	}
	// The maximum's probe left its dead rows in the table every queue
	// shares (in a quick run, so did the earlier scenarios): vacuumed
	// away, with the empty pages at the table's end given back, they do
	// not pad the size after the first window the end is compared with.
	table := pgx.Identifier{schema, "quantum_flow_messages"}.Sanitize()
	reset := func(ctx context.Context) error {
		if _, err := conn.Exec(ctx, "VACUUM "+table); err != nil {
			return fmt.Errorf("vacuum %s: %w", table, err)
		}
		return nil
	}
	return &gauge{
		what:  schema + ".quantum_flow_messages with its indexes",
		read:  read,
		reset: reset,
		close: func() { _ = conn.Close(context.WithoutCancel(ctx)) },
	}, nil
}

// natsGauge reads the size on disk of queue's stream in the embedded
// server's store directory (its message blocks, their index and the
// consumer's state: the table-plus-index of NATS), with the stream's
// stored message bytes (JetStream's own count, which leaves out deleted
// messages' space) beside it.
func natsGauge(ctx context.Context, srv *embedded.Server, clientURL, queue string) (*gauge, error) {
	if srv == nil {
		return nil, errors.New("storage gauge: no embedded NATS server")
	}
	// The backend's queue stream, with the default prefix the bench opens
	// it with (backends/nats/names.go: <prefix>_<queue, '.' as '='>).
	stream := qfnats.DefaultPrefix + "_" + strings.ReplaceAll(queue, ".", "=")
	dirs, err := filepath.Glob(filepath.Join(srv.DataDir(), "jetstream", "*", "streams", stream))
	if err != nil || len(dirs) != 1 {
		return nil, fmt.Errorf("storage gauge: stream %s's directory not found in %s (%d matches)", stream, srv.DataDir(), len(dirs))
	}
	nc, err := nats.Connect(clientURL, nats.Name("quantumflow-bench-steady"))
	if err != nil {
		return nil, fmt.Errorf("storage gauge: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("storage gauge: %w", err)
	}
	read := func(ctx context.Context) (storageSample, error) {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return storageSample{}, fmt.Errorf("stream %s: %w", stream, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return storageSample{}, fmt.Errorf("stream %s: %w", stream, err)
		}
		disk, err := dirSize(dirs[0])
		if err != nil {
			return storageSample{}, err
		}
		return storageSample{bytes: disk, detail: fmt.Sprintf("stream holds %d messages, %s stored", info.State.Msgs, fmtSize(int64(info.State.Bytes)))}, nil
	}
	return &gauge{what: "stream " + stream + " on disk", floor: natsBlockBytes, read: read, close: nc.Close}, nil
}

// natsBlockBytes is the size of a message block of a queue stream: the
// file store appends to its last block until the block reaches this size
// and keeps a block until all of its messages are gone, so a stream of a
// few messages takes anything from a few KiB to a block on disk (31 to 276
// KiB between windows of one steady run). nats-server 2.15.2's dynBlkSize
// gives a work-queue stream without max_bytes (the backend's default)
// 4 MiB blocks.
const natsBlockBytes = 4 << 20

// dirSize sums the sizes of the regular files under dir. Files the server
// removes during the walk (a message block emptied by acks) are skipped.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return total, nil
}

// fmtSize formats a byte count: "812 KiB", "3.4 MiB".
func fmtSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// steadyTable is the report's table of the steady scenario: the maximum
// and the rate offered, deliveries, latency over the run, and the first
// window against the last (p99, storage size).
func steadyTable(subj func(*Result) string) ([]string, func(*Result) []string) {
	head := []string{"subject", "maximum msg/s", "offered msg/s", "delivered / offered", "run p50 / p99 ms",
		"first window p99 ms", "last window p99 ms", "last / first p99", "first window largest size", "last window largest size", "last / first size"}
	cells := func(r *Result) []string {
		out := []string{subj(r)}
		st := r.Steady
		if st == nil || len(st.Windows) == 0 {
			msg := "no figure"
			if r.Error != "" {
				msg = "error: " + mdEscape(r.Error)
			}
			return append(out, msg, "", "", "", "", "", "", "", "", "")
		}
		first, last := st.Windows[0], st.Windows[len(st.Windows)-1]
		out = append(out, fmtRate(st.MaxRate), fmtRate(r.Rate), fmt.Sprintf("%d / %d (%.4f)", st.Delivered, st.Offered, float64(st.Delivered)/float64(max(st.Offered, 1))))
		if r.Latency != nil {
			out = append(out, fmtMs(r.Latency.P50Ms)+" / "+fmtMs(r.Latency.P99Ms))
		} else {
			out = append(out, "")
		}
		p99 := func(w WindowFigure) float64 {
			if w.Latency == nil {
				return 0
			}
			return w.Latency.P99Ms
		}
		out = append(out, fmtMs(p99(first)), fmtMs(p99(last)), ratioCell(p99(last), p99(first)),
			fmtSize(first.SizeBytes), fmtSize(last.SizeBytes), ratioCell(st.sizeRatio()))
		return out
	}
	return head, cells
}

// ratioCell is a/b as a table cell, "—" without a b.
func ratioCell(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	return fmtRatio(a / b)
}

// sizeRatio returns the largest sizes of the last window and of the
// first, each counted as at least the storage's floor (SizeFloorBytes).
func (st *SteadyFigure) sizeRatio() (last, first float64) {
	l, f := st.Windows[len(st.Windows)-1].SizeBytes, st.Windows[0].SizeBytes
	if l <= 0 || f <= 0 {
		return 0, 0 // not read
	}
	return float64(max(l, st.SizeFloorBytes)), float64(max(f, st.SizeFloorBytes))
}

// steadyTargets are issue 16's steady-state rows, three per backend:
// the last window's p99 against the first's, delivered / offered, and the
// last window's largest storage size against the first window's. Each
// decides on its own figure; a run without the figure says why.
func steadyTargets(rep *Report, find func(string, string, func(Params) bool) *Result) []Target {
	var note string
	if rep.Mode == "quick" {
		note = fmt.Sprintf("quick mode: %s in windows of %s, not 10 minutes in windows of 1 minute; only the full run counts", rep.Sizes.Steady.D(), rep.Sizes.SteadyWindow.D())
	}
	var out []Target
	for _, subject := range []string{SubjectPostgres, SubjectNATS} {
		size := "table plus index size (quantum_flow_messages)"
		if subject == SubjectNATS {
			size = "queue stream size on disk (under one message block counted as one block)"
		}
		p99 := Target{Issue: 16, Unit: "×", Op: "≤", Threshold: 1.5, Note: note,
			Text: fmt.Sprintf("Steady state at 50%% of the measured maximum for 10 minutes: last minute's p99 ≤ 1.5× the first minute's [%s]", subject)}
		delivered := Target{Issue: 16, Unit: "×", Op: "≥", Threshold: 1, Note: note,
			Text: fmt.Sprintf("Steady state at 50%% of the measured maximum for 10 minutes: delivered/offered 1.00, no message missing [%s]", subject)}
		grown := Target{Issue: 16, Unit: "×", Op: "≤", Threshold: 2, Note: note,
			Text: fmt.Sprintf("Steady state at 50%% of the measured maximum for 10 minutes: the last minute's largest %s ≤ 2× the first minute's [%s]", size, subject)}
		r := find(ScenarioSteady, subject, func(Params) bool { return true })
		if r == nil || r.Steady == nil || len(r.Steady.Windows) == 0 {
			detail := missingDetail(r, ScenarioSteady, subject, "")
			p99.Detail, delivered.Detail, grown.Detail = detail, detail, detail
			out = append(out, p99, delivered, grown)
			continue
		}
		st := r.Steady
		first, last := st.Windows[0], st.Windows[len(st.Windows)-1]
		at := fmt.Sprintf("%s at %s msg/s (half of %s msg/s)", subject, fmtRate(r.Rate), fmtRate(st.MaxRate))
		if first.Latency != nil && last.Latency != nil && first.Latency.P99Ms > 0 {
			decide(&p99, last.Latency.P99Ms/first.Latency.P99Ms)
			p99.Detail = fmt.Sprintf("%s: p99 %.2f ms in the first %s window, %.2f ms in the last", at, first.Latency.P99Ms, st.Window.D(), last.Latency.P99Ms)
		} else {
			p99.Detail = at + ": a window without latency figures"
		}
		if st.Offered > 0 {
			decide(&delivered, float64(st.Delivered)/float64(st.Offered))
			delivered.Detail = fmt.Sprintf("%s: %d of %d delivered, %d missing after the drain", at, st.Delivered, st.Offered, st.Offered-st.Delivered)
		} else {
			delivered.Detail = at + ": nothing offered"
		}
		if l, f := st.sizeRatio(); f > 0 {
			decide(&grown, l/f)
			grown.Detail = fmt.Sprintf("%s: %s at most %s in the first window, %s in the last (%s)", at, st.Storage, fmtSize(first.SizeBytes), fmtSize(last.SizeBytes), last.SizeDetail)
			if st.SizeFloorBytes > 0 {
				grown.Detail += fmt.Sprintf("; sizes under %s, one message block, compared as %s", fmtSize(st.SizeFloorBytes), fmtSize(st.SizeFloorBytes))
			}
		} else {
			grown.Detail = fmt.Sprintf("%s: size not read (first window: %s; last: %s)", at, first.SizeDetail, last.SizeDetail)
		}
		out = append(out, p99, delivered, grown)
	}
	return out
}
