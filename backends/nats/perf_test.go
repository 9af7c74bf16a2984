package nats_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
)

// The benchmarks run the backend and raw nats.go jetstream (what the
// bench harness compares it with: PublishAsync batches, sync Publish,
// pull Consume with its default buffering) on the same embedded server,
// back to back, so that their ratio means something on a shared machine:
//
//	go test ./backends/nats -run '^$' -bench . -benchtime 20000x
//
// Environment: QF_BENCH_MSGID=1 adds raw publishing with a Nats-Msg-Id
// per message (the dedup the backend does); QF_BENCH_SYNC=1 fsyncs every
// write; QF_BENCH_PARAMS="&prefetch=512" adds URL parameters to the
// backend's; QF_BENCH_CPUPROFILE=/tmp/p writes CPU and allocation
// profiles of each timed part to /tmp/p-<benchmark>.

// benchServer starts a server for a benchmark (default sync policy unless
// QF_BENCH_SYNC is set).
func benchServer(b *testing.B) string {
	b.Helper()
	// With QF_BENCH_SYNC: fsync every write, as the bench harness's _sync
	// variants.
	srv, err := embedded.Start(b.Context(), embedded.Options{SyncAlways: os.Getenv("QF_BENCH_SYNC") != ""})
	require.NoError(b, err)
	b.Cleanup(func() { _ = srv.Close() })
	return srv.ClientURL()
}

// rawJS is the raw nats.go side: a work-queue stream with a durable pull
// consumer, as the bench harness's baseline makes them.
type rawJS struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newRawJS(b *testing.B, url, queue string) *rawJS {
	b.Helper()
	nc, err := nats.Connect(url)
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	require.NoError(b, err)
	ctx := context.Background()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: queue, Subjects: []string{"raw." + queue}, Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
	})
	require.NoError(b, err)
	_, err = js.CreateOrUpdateConsumer(ctx, queue, jetstream.ConsumerConfig{Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second})
	require.NoError(b, err)
	return &rawJS{nc: nc, js: js}
}

func (r *rawJS) publish(b *testing.B, queue string, payloads [][]byte) {
	subj := "raw." + queue
	if len(payloads) == 1 {
		_, err := r.js.Publish(context.Background(), subj, payloads[0])
		require.NoError(b, err)
		return
	}
	futures := make([]jetstream.PubAckFuture, len(payloads))
	for i, p := range payloads {
		f, err := r.js.PublishAsync(subj, p)
		require.NoError(b, err)
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

func (r *rawJS) consume(b *testing.B, queue string, workers, n int) {
	cons, err := r.js.Consumer(context.Background(), queue, "workers")
	require.NoError(b, err)
	var got atomic.Int64
	done := make(chan struct{})
	var ccs []jetstream.ConsumeContext
	for range workers {
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			if got.Add(1) == int64(n) {
				close(done)
			}
		})
		require.NoError(b, err)
		ccs = append(ccs, cc)
	}
	<-done
	for _, cc := range ccs {
		cc.Stop()
		<-cc.Closed()
	}
}

func payloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, 256)
	}
	return out
}

// publishRounds publishes b.N messages in calls of batch from publishers
// goroutines.
func publishRounds(b *testing.B, publishers, batch int, call func([][]byte)) {
	calls := max(1, b.N/batch)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	stop := profile(b)
	c0 := cpuTime()
	for range publishers {
		wg.Go(func() {
			p := payloads(batch)
			for next.Add(1) <= int64(calls) {
				call(p)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	stop()
	b.ReportMetric(float64(calls*batch)/b.Elapsed().Seconds(), "msgs/s")
	reportCPU(b, c0, calls*batch)
}

// cpuTime is the process's CPU time so far (server included: it runs in
// the process), steadier than throughput on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile writes a CPU profile of the timed part of a benchmark (not its
// setup, such as preloading a queue) to $QF_BENCH_CPUPROFILE-<name> when
// that is set, and allocation profiles at its start and end (.allocs0,
// .allocs1: compare with pprof -diff_base); go test's -cpuprofile covers
// the whole run.
func profile(b *testing.B) (stop func()) {
	dir := os.Getenv("QF_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(dir + "-" + strings.ReplaceAll(b.Name(), "/", "_"))
	require.NoError(b, err)
	require.NoError(b, pprof.StartCPUProfile(f))
	writeAllocs := func(suffix string) {
		af, err := os.Create(dir + "-" + strings.ReplaceAll(b.Name(), "/", "_") + suffix)
		require.NoError(b, err)
		defer af.Close()
		require.NoError(b, pprof.Lookup("allocs").WriteTo(af, 0))
	}
	writeAllocs(".allocs0")
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		writeAllocs(".allocs1")
	}
}

func reportCPU(b *testing.B, c0 time.Duration, n int) {
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(n), "cpu-µs/msg")
}

func benchPublish(b *testing.B, publishers, batch int) {
	url := benchServer(b)
	for _, keyed := range []bool{false, true} {
		name := "backend"
		if keyed {
			name = "backend_keyed"
		}
		b.Run(name, func(b *testing.B) {
			benchBackendPublish(b, url, publishers, batch, keyed)
		})
	}
	b.Run("raw", func(b *testing.B) {
		queue := "RAWPUB" + uuid.NewString()[:8]
		r := newRawJS(b, url, queue)
		publishRounds(b, publishers, batch, func(p [][]byte) { r.publish(b, queue, p) })
	})
	if os.Getenv("QF_BENCH_MSGID") != "" {
		b.Run("raw_msgid", func(b *testing.B) {
			queue := "RAWPUBID" + uuid.NewString()[:8]
			r := newRawJS(b, url, queue)
			publishRounds(b, publishers, batch, func(p [][]byte) {
				futures := make([]jetstream.PubAckFuture, len(p))
				for i := range p {
					f, err := r.js.PublishMsgAsync(&nats.Msg{Subject: "raw." + queue, Data: p[i], Header: nats.Header{"Nats-Msg-Id": {uuid.NewString()}}})
					require.NoError(b, err)
					futures[i] = f
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// benchBackendPublish publishes through the backend, each message with a
// dedup key of its own when keyed (the bench harness's publish_dedup).
func benchBackendPublish(b *testing.B, url string, publishers, batch int, keyed bool) {
	be, err := pubsub.Open(context.Background(), url+"?prefix=B"+uuid.NewString()[:8]+os.Getenv("QF_BENCH_PARAMS"))
	require.NoError(b, err)
	defer be.Close()
	queue := "pub"
	require.NoError(b, be.Publisher().Publish(queue, message.NewMessage(uuid.NewString(), nil)))
	publishRounds(b, publishers, batch, func(p [][]byte) {
		msgs := make([]*message.Message, len(p))
		for i := range p {
			msgs[i] = message.NewMessage(uuid.NewString(), p[i])
			if keyed {
				pubsub.SetDedupKey(msgs[i], msgs[i].UUID)
			}
		}
		if err := be.Publisher().Publish(queue, msgs...); err != nil {
			b.Error(err)
		}
	})
}

func BenchmarkPublishBatch100x4(b *testing.B) { benchPublish(b, 4, 100) }

// BenchmarkPublishBatch100x16 keeps the machine busy (CPU-bound on two
// cores), as the bench harness does: there the CPU each message costs
// decides the rate.
func BenchmarkPublishBatch100x16(b *testing.B) { benchPublish(b, 16, 100) }
func BenchmarkPublishOne(b *testing.B)         { benchPublish(b, 1, 1) }
func BenchmarkPublishOneX8(b *testing.B)       { benchPublish(b, 8, 1) }

func BenchmarkConsume4(b *testing.B) { benchConsume(b, 4) }

func benchConsume(b *testing.B, workers int) {
	url := benchServer(b)
	b.Run("backend", func(b *testing.B) {
		be, err := pubsub.Open(context.Background(), url+"?prefix=B"+uuid.NewString()[:8]+os.Getenv("QF_BENCH_PARAMS"))
		require.NoError(b, err)
		defer be.Close()
		queue := "cons"
		for i := 0; i < b.N; i += 100 {
			msgs := make([]*message.Message, min(100, b.N-i))
			for j := range msgs {
				msgs[j] = message.NewMessage(uuid.NewString(), make([]byte, 256))
			}
			require.NoError(b, be.Publisher().Publish(queue, msgs...))
		}
		ctx, cancel := context.WithCancel(context.Background())
		var got atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		b.ResetTimer()
		stop := profile(b)
		c0 := cpuTime()
		for range workers {
			ch, err := be.Subscriber().Subscribe(ctx, queue)
			require.NoError(b, err)
			wg.Go(func() {
				for m := range ch {
					m.Ack()
					if got.Add(1) == int64(b.N) {
						close(done)
					}
				}
			})
		}
		<-done
		b.StopTimer()
		stop()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		reportCPU(b, c0, b.N)
		cancel()
		wg.Wait()
	})
	b.Run("raw", func(b *testing.B) {
		queue := "RAWCONS" + uuid.NewString()[:8]
		r := newRawJS(b, url, queue)
		for i := 0; i < b.N; i += 100 {
			r.publish(b, queue, payloads(min(100, b.N-i)))
		}
		b.ResetTimer()
		stop := profile(b)
		c0 := cpuTime()
		r.consume(b, queue, workers, b.N)
		b.StopTimer()
		stop()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		reportCPU(b, c0, b.N)
	})
}
