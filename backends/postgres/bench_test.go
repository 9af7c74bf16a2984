package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// These benchmarks measure the backend's hot paths beside the same work
// written with raw pgx on the backend's own table, on the throwaway
// cluster (fsync on). The project's benchmark harness (bench/) makes the
// comparisons of record; these are for working on the backend.

var payload256 = []byte(`{"proposal":"` + string(make([]byte, 0)) + fmt.Sprintf("%0240d", 0) + `"}`)

func openBench(b *testing.B, params ...string) (*pubsub.Backend, string) {
	b.Helper()
	db := pgtest.Database(b)
	ctx := context.Background()
	be, err := pubsub.Open(ctx, withParams(db, params...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	if err := be.Init(ctx); err != nil {
		b.Fatal(err)
	}
	return be, db
}

func preload(b *testing.B, be *pubsub.Backend, queue string, n int) {
	b.Helper()
	for i := 0; i < n; i += 1000 {
		batch := make([]*message.Message, min(1000, n-i))
		for j := range batch {
			batch[j] = message.NewMessage(uuid.NewString(), payload256)
		}
		if err := be.Publisher().Publish(queue, batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsume: N subscriptions, no-op handler, ack, from a preloaded
// queue; with asynchronous acks, with the default sync_acks (equal
// durability to the raw loop's commits), and with claims of at most 100
// messages, as the raw loop's.
func BenchmarkConsume(b *testing.B) {
	for _, c := range []struct {
		name   string
		params []string
	}{
		{"acks=async", []string{"sync_acks", "false"}},
		{"acks=sync", nil},
		{"acks=async/batch=100", []string{"sync_acks", "false", "batch", "100"}}, // the raw loop's claim size
	} {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", c.name, workers), func(b *testing.B) {
				benchConsume(b, workers, c.params...)
			})
		}
	}
}

func benchConsume(b *testing.B, workers int, params ...string) {
	be, db := openBench(b, params...)
	preload(b, be, "q", b.N)
	cpu := newCPUMeter(b, db)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	done := make(chan struct{})
	b.ResetTimer()
	cpu.begin()
	for range workers {
		ch, err := be.Subscriber().Subscribe(ctx, "q")
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for m := range ch {
				m.Ack()
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		}()
	}
	<-done
	b.StopTimer()
	cpu.report(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// rawTableDDL is the raw baselines' own table, shaped as
// quantum_flow_messages was first made (0001: partial claim index of
// waiting rows, full pages), so that the floor does not move with the
// backend's migrations. The project's harness (bench/) does the same.
var rawTableDDL = []string{
	`CREATE TABLE raw_messages (LIKE quantum_flow_messages INCLUDING DEFAULTS INCLUDING IDENTITY)`,
	`ALTER TABLE raw_messages ADD PRIMARY KEY (seq)`,
	`CREATE INDEX raw_messages_claim_idx ON raw_messages (queue_name, priority DESC, created_at, seq) WHERE status = 'pending'`,
}

func openRaw(b *testing.B, db string) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	for _, q := range rawTableDDL {
		if _, err := pool.Exec(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
	return pool
}

// BenchmarkRawClaimDelete is the floor of BenchmarkConsume: claim 100 with
// SKIP LOCKED and delete them in one transaction, per worker.
func BenchmarkRawClaimDelete(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			_, db := openBench(b)
			pool := openRaw(b, db)
			ctx := context.Background()
			for i := 0; i < b.N; i += 1000 {
				rows := make([][]any, min(1000, b.N-i))
				for j := range rows {
					rows[j] = []any{uuid.NewString(), "q", payload256}
				}
				if _, err := pool.CopyFrom(ctx, pgx.Identifier{"raw_messages"}, []string{"id", "queue_name", "payload"}, pgx.CopyFromRows(rows)); err != nil {
					b.Fatal(err)
				}
			}
			// Fresh statistics, or the planner sorts the whole backlog
			// on every claim (the backend steers its claim instead).
			if _, err := pool.Exec(ctx, `ANALYZE raw_messages`); err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			var wg sync.WaitGroup
			cpu := newCPUMeter(b, db)
			b.ResetTimer()
			cpu.begin()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for got.Load() < int64(b.N) {
						tx, err := pool.Begin(ctx)
						if err != nil {
							b.Error(err)
							return
						}
						rows, _ := tx.Query(ctx, `SELECT seq, payload FROM raw_messages
							WHERE queue_name = $1 AND status = 'pending' AND available_at <= now()
							ORDER BY priority DESC, created_at, seq LIMIT 100 FOR UPDATE SKIP LOCKED`, "q")
						var seqs []int64
						for rows.Next() {
							var s int64
							var p []byte
							_ = rows.Scan(&s, &p)
							seqs = append(seqs, s)
						}
						rows.Close()
						if _, err := tx.Exec(ctx, `DELETE FROM raw_messages WHERE seq = ANY($1)`, seqs); err != nil {
							b.Error(err)
							return
						}
						if err := tx.Commit(ctx); err != nil {
							b.Error(err)
							return
						}
						got.Add(int64(len(seqs)))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// batchCalls runs call from 4 goroutines until about b.N messages, 100 per
// call, went through, and reports CPU per message and throughput.
func batchCalls(b *testing.B, db string, call func() error) {
	calls := b.N/100 + 1
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu := newCPUMeter(b, db)
	b.ResetTimer()
	cpu.begin()
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(calls) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu.report(b, calls*100)
	b.ReportMetric(float64(calls*100)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkPublishBatch: 4 goroutines publishing 100 messages per call.
func BenchmarkPublishBatch(b *testing.B) {
	be, db := openBench(b)
	batchCalls(b, db, func() error {
		batch := make([]*message.Message, 100)
		for j := range batch {
			batch[j] = message.NewMessage(uuid.NewString(), payload256)
		}
		return be.Publisher().Publish("q", batch...)
	})
}

// BenchmarkRawCopy is the floor of BenchmarkPublishBatch: COPY of 100 rows
// per transaction, 4 goroutines.
func BenchmarkRawCopy(b *testing.B) {
	_, db := openBench(b)
	pool := openRaw(b, db)
	ctx := context.Background()
	batchCalls(b, db, func() error {
		rows := make([][]any, 100)
		for j := range rows {
			rows[j] = []any{uuid.NewString(), "q", payload256}
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_messages"}, []string{"id", "queue_name", "payload"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// BenchmarkLatency publishes one message at a time at about 200/s to 4
// subscriptions and reports the publish-to-receive latency percentiles,
// and how much of it the publish (its commit) took.
func BenchmarkLatency(b *testing.B) {
	be, _ := openBench(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type sample struct {
		id   string
		recv time.Time
	}
	lat := make(chan sample, 1024)
	for range 4 {
		ch, err := be.Subscriber().Subscribe(ctx, "q")
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for m := range ch {
				lat <- sample{m.UUID, time.Now()}
				m.Ack()
			}
		}()
	}
	n := max(b.N, 200)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	published := map[string]time.Time{}
	b.ResetTimer()
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range n {
			<-tick.C
			m := message.NewMessage(uuid.NewString(), payload256)
			mu.Lock()
			sent[m.UUID] = time.Now()
			mu.Unlock()
			go func() {
				_ = be.Publisher().Publish("q", m)
				mu.Lock()
				published[m.UUID] = time.Now()
				mu.Unlock()
			}()
		}
	}()
	var all, pubs []time.Duration
	var samples []sample
	for range n {
		samples = append(samples, <-lat)
	}
	b.StopTimer()
	mu.Lock()
	for _, s := range samples {
		all = append(all, s.recv.Sub(sent[s.id]))
		if p, ok := published[s.id]; ok {
			pubs = append(pubs, p.Sub(sent[s.id]))
		}
	}
	mu.Unlock()
	slicesSort(all)
	slicesSort(pubs)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(pubs[len(pubs)/2].Microseconds())/1000, "publish_p50_ms")
	b.ReportMetric(float64(pubs[len(pubs)*99/100].Microseconds())/1000, "publish_p99_ms")
}

func slicesSort(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// cpuMeter measures the CPU time of this process plus that of the
// database's server processes: what a benchmark costs, whatever else the
// machine runs at the time.
type cpuMeter struct {
	conn    *pgx.Conn
	start   time.Duration
	goStart time.Duration
}

func goCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newCPUMeter(b *testing.B, db string) *cpuMeter {
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	return &cpuMeter{conn: conn}
}

func (m *cpuMeter) total() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rows, err := m.conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR backend_type IN ('walwriter', 'checkpointer', 'background writer', 'autovacuum worker')`)
	if err != nil {
		return t
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		t += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return t
}

func (m *cpuMeter) begin() { m.start, m.goStart = m.total(), goCPU() }

func (m *cpuMeter) report(b *testing.B, n int) {
	b.ReportMetric(float64((m.total()-m.start).Microseconds())/float64(n), "cpu_us/msg")
	b.ReportMetric(float64((goCPU()-m.goStart).Microseconds())/float64(n), "go_cpu_us/msg")
}

// BenchmarkRawCommitLatency: one-row INSERT transactions, back to back:
// the commit (fsync) latency floor under which no publish can go.
func BenchmarkRawCommitLatency(b *testing.B) {
	_, db := openBench(b)
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var all []time.Duration
	b.ResetTimer()
	for range max(b.N, 200) {
		t := time.Now()
		if _, err := conn.Exec(context.Background(), `INSERT INTO quantum_flow_messages (id, queue_name, payload) VALUES ($1, 'q', $2)`, uuid.NewString(), payload256); err != nil {
			b.Fatal(err)
		}
		all = append(all, time.Since(t))
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	slicesSort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkLonePublish: one publisher, one message per call, against raw
// pgx's single-row autocommit insert, and against the backend with NOTIFY
// out of the way (notify_debounce=1h), taking turns of 50 calls in one
// process: a lone publish waits for its commit, whose time follows the
// disk's and drifts by a third from one minute to the next, so figures
// taken one after the other compare little (issue 16).
func BenchmarkLonePublish(b *testing.B) {
	be, db := openBench(b)
	quiet, _ := openBench(b, "notify_debounce", "1h")
	pool := openRaw(b, db)
	ctx := context.Background()
	publish := func(be *pubsub.Backend) func() error {
		return func() error { return be.Publisher().Publish("q", message.NewMessage(uuid.NewString(), payload256)) }
	}
	arms := []struct {
		unit string
		call func() error
		took time.Duration
	}{
		{unit: "us/publish", call: publish(be)},
		{unit: "us/publish_no_notify", call: publish(quiet)},
		{unit: "us/raw_insert", call: func() error {
			_, err := pool.Exec(ctx, `INSERT INTO raw_messages (id, queue_name, payload) VALUES ($1, $2, $3)`, uuid.NewString(), "q", payload256)
			return err
		}},
	}
	const turn = 50
	n := 0
	for b.Loop() {
		for i := range arms {
			start := time.Now()
			for range turn {
				if err := arms[i].call(); err != nil {
					b.Fatal(err)
				}
			}
			arms[i].took += time.Since(start)
		}
		n += turn
	}
	for _, a := range arms {
		b.ReportMetric(float64(a.took.Microseconds())/float64(n), a.unit)
	}
}
