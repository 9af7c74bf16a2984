package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// publishThroughput counts messages published by p.Publishers goroutines,
// each publishing p.Batch messages per call back to back, over the
// publish window after a warm-up.
func (r *runner) publishThroughput(ctx context.Context, inst *instance, p Params, res *Result) error {
	queue := r.env.queueName("publish")
	if err := inst.prepare(ctx, queue); err != nil {
		return fmt.Errorf("prepare %s: %w", queue, err)
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	var count, seq atomic.Int64
	send := inst.publish
	if p.Dedup {
		send = func(ctx context.Context, queue string, payloads [][]byte) error {
			return publishWithKeys(ctx, inst, queue, payloads, &seq)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range p.Publishers {
		wg.Go(func() {
			for runCtx.Err() == nil {
				batch := make([][]byte, p.Batch)
				for i := range batch {
					batch[i] = newPayload(tmpl, seq.Add(1))
				}
				if err := send(runCtx, queue, batch); err != nil {
					if runCtx.Err() == nil {
						errOnce.Do(func() { firstErr = err })
						cancel()
					}
					return
				}
				count.Add(int64(p.Batch))
			}
		})
	}
	sleepCtx(runCtx, r.sizes.Warmup.D())
	c0, t0 := count.Load(), time.Now()
	sleepCtx(runCtx, r.sizes.Publish.D())
	// A subject slower than the window (a batch of 100 fsynced one by
	// one) gets until its first call completes, within a bound.
	for bound := time.Now().Add(30 * time.Second); count.Load() == c0 && time.Now().Before(bound) && runCtx.Err() == nil; {
		sleepCtx(runCtx, 5*time.Millisecond)
	}
	c1, t1 := count.Load(), time.Now()
	cancel()
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("publish to %s: %w", queue, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	res.Messages = c1 - c0
	res.Seconds = t1.Sub(t0).Seconds()
	res.Throughput = float64(res.Messages) / res.Seconds
	if res.Messages == 0 {
		return fmt.Errorf("no publish call completed in %s", r.sizes.Publish.D()+30*time.Second)
	}
	return nil
}

// publishWithKeys publishes payloads to queue through inst, each message
// with a dedup key of its own (from seq), so none is a duplicate.
func publishWithKeys(ctx context.Context, inst *instance, queue string, payloads [][]byte, seq *atomic.Int64) error {
	keys := make([]string, len(payloads))
	for i := range keys {
		keys[i] = "bench-" + strconv.FormatInt(seq.Add(1), 10)
	}
	if raw, ok := inst.subject.(*pgxRaw); ok {
		return raw.publishKeyed(ctx, queue, payloads, keys)
	}
	if inst.backend == nil {
		return errors.New("dedup keys: the subject is neither a QuantumFlow backend nor raw pgx")
	}
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), p)
		pubsub.SetDedupKey(msgs[i], keys[i])
	}
	return inst.backend.Publisher().Publish(queue, msgs...)
}

// preload publishes n messages to queue in batches of 100 from 4
// goroutines, stopping early at maxDur. It returns how many it wrote.
func (r *runner) preload(ctx context.Context, inst *instance, queue string, tmpl []byte, n int, maxDur time.Duration) (int, error) {
	const batchSize, publishers = 100, 4
	deadline := time.Now().Add(maxDur)
	var claimed, loaded, seq atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				from := claimed.Add(batchSize) - batchSize
				if from >= int64(n) {
					return
				}
				size := min(batchSize, int64(n)-from)
				batch := make([][]byte, size)
				for i := range batch {
					batch[i] = newPayload(tmpl, seq.Add(1))
				}
				if err := inst.publish(ctx, queue, batch); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				loaded.Add(size)
			}
		})
	}
	if n >= 100_000 {
		// Large preloads take a while: say how far they got.
		done := make(chan struct{})
		go func() {
			tick := time.NewTicker(10 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					fmt.Fprintf(r.cfg.Progress, "           preloading %s: %d/%d\n", queue, loaded.Load(), n)
				}
			}
		}()
		defer close(done)
	}
	wg.Wait()
	if firstErr != nil {
		return int(loaded.Load()), fmt.Errorf("preload %s: %w", queue, firstErr)
	}
	return int(loaded.Load()), ctx.Err()
}

// consumeThroughput preloads a backlog, then lets p.Workers consumers take
// messages (no-op handler, ack) and measures the rate from the first
// message to the last of the backlog, or to the ConsumeMax bound.
func (r *runner) consumeThroughput(ctx context.Context, inst *instance, p Params, res *Result) error {
	queue, loaded, err := r.preloadQueue(ctx, inst, p, r.sizes.Preload, r.sizes.PreloadMax.D(), res)
	if err != nil {
		return err
	}
	got, elapsed, _, err := r.drain(ctx, inst, queue, p.Workers, int64(loaded))
	if err != nil {
		return err
	}
	res.Messages = got
	res.Seconds = elapsed.Seconds()
	res.Throughput = rateOf(got, elapsed)
	return nil
}

// backlogRepeats is how many samples the backlog rate is the median of.
// A sample of 5,000 messages lasts about 50 ms on NATS, and within one
// case they ran from 57k to 126k msg/s (bench/RESULTS.md at e3e8f9c): the
// median of 5 read 0.79-0.89x the consume scenario's figure in three runs
// of the same code, and of 15, 0.91-1.00x, the small and large backlogs
// then within 1-10% of each other instead of 3-30% (runs of the backlog
// and consume scenarios alone). In the full run at c2ffbb1 the small
// backlog's 15 samples all read lower (62-112k against 65-152k): a gap
// more samples do not close.
const backlogRepeats = 15

// backlogThroughput measures the consume rate with p.Pending messages
// waiting: the median of backlogRepeats samples on one queue, each
// starting p.Workers consumers and timing the first BacklogSample messages
// from the first one. Between samples the small backlog is topped up to
// its size again (untimed); the large one is barely dented by them. Both
// cases thus consume the same messages from one queue, and differ only in
// how many wait behind them.
func (r *runner) backlogThroughput(ctx context.Context, inst *instance, p Params, res *Result) error {
	queue, loaded, err := r.preloadQueue(ctx, inst, p, p.Pending, r.sizes.BacklogPreloadMax.D(), res)
	if err != nil {
		return err
	}
	if loaded < r.sizes.BacklogSample*2 {
		return fmt.Errorf("only %d of %d preloaded in %s: too few to sample %d", loaded, p.Pending, r.sizes.BacklogPreloadMax.D(), r.sizes.BacklogSample)
	}
	topUp := loaded < backlogRepeats*r.sizes.BacklogSample*2
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	var rates, startups []float64
	// The CPU over the samples (top-ups left out): in full runs NATS's
	// small backlog read below its large one every time (at c2ffbb1),
	// and not in runs of this scenario alone, nor after the vacuum or
	// instances scenarios that precede it in a full run.
	var cpu cpuUse
	var total int64
	var elapsedTotal time.Duration
	for i := range backlogRepeats {
		if i > 0 && topUp {
			if _, err := r.preload(ctx, inst, queue, tmpl, r.sizes.BacklogSample, r.sizes.BacklogPreloadMax.D()); err != nil {
				return err
			}
		}
		meter := startCPU()
		got, elapsed, startup, err := r.drain(ctx, inst, queue, p.Workers, int64(r.sizes.BacklogSample))
		if err != nil {
			return err
		}
		cpu.add(meter.use())
		rates = append(rates, rateOf(got, elapsed))
		startups = append(startups, float64(startup)/float64(time.Millisecond))
		total += got
		elapsedTotal += elapsed
	}
	res.Messages = total
	res.Seconds = elapsedTotal.Seconds()
	res.Throughput = median(rates)
	res.FirstMessageMs = median(startups)
	parts := make([]string, len(rates))
	for i, v := range rates {
		parts[i] = fmt.Sprintf("%s msg/s (first after %.2f ms)", fmtRate(v), startups[i])
	}
	note := fmt.Sprintf("median of %d samples of %d messages: %s", len(rates), r.sizes.BacklogSample, strings.Join(parts, ", "))
	if c := cpu.note(); c != "" {
		note += "; " + strings.Replace(c, "while it ran", "during the samples", 1)
	}
	res.Note = strings.TrimPrefix(res.Note+"; "+note, "; ")
	return nil
}

// preloadQueue declares a new queue and preloads n messages into it
// (within maxDur), recording the backlog in res.
func (r *runner) preloadQueue(ctx context.Context, inst *instance, p Params, n int, maxDur time.Duration, res *Result) (string, int, error) {
	queue := r.env.queueName("consume")
	if err := inst.prepare(ctx, queue); err != nil {
		return "", 0, fmt.Errorf("prepare %s: %w", queue, err)
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return "", 0, err
	}
	loaded, err := r.preload(ctx, inst, queue, tmpl, n, maxDur)
	if err != nil {
		return "", 0, err
	}
	res.Pending = loaded
	if loaded < n {
		res.Note = fmt.Sprintf("preload stopped at its %s bound: %d of %d pending", maxDur, loaded, n)
	}
	return queue, loaded, nil
}

// drain starts workers consumers of queue and stops them once they have
// received target messages (or the consume bound passed): it returns how
// many they received, the time from the first to the last, and the time
// from the start of the consumers to the first.
func (r *runner) drain(ctx context.Context, inst *instance, queue string, workers int, target int64) (int64, time.Duration, time.Duration, error) {
	if target < 1 {
		return 0, 0, 0, fmt.Errorf("%w: nothing preloaded in %s", errNoMessages, queue)
	}
	var count, first, last atomic.Int64
	done := make(chan struct{})
	handle := func([]byte) bool {
		now := time.Now().UnixNano()
		c := count.Add(1)
		if c == 1 {
			first.Store(now)
		}
		if c == target {
			last.Store(now)
			close(done)
		}
		return c <= target
	}
	start := time.Now().UnixNano()
	stop, err := inst.consume(ctx, queue, workers, handle)
	if err != nil {
		return 0, 0, 0, err
	}
	timer := time.NewTimer(r.sizes.ConsumeMax.D())
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	end := time.Now().UnixNano()
	got := min(count.Load(), target)
	stop()
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	if got == 0 {
		return 0, 0, 0, fmt.Errorf("%w from %s within %s", errNoMessages, queue, r.sizes.ConsumeMax.D())
	}
	if got == target {
		end = last.Load()
	}
	return got, time.Duration(end - first.Load()), time.Duration(first.Load() - start), nil
}

// median returns the middle of vs (the upper one of an even count).
func median(vs []float64) float64 {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

// rateOf is the rate of got messages arriving over elapsed: got-1
// intervals, since the clock starts at the first.
func rateOf(got int64, elapsed time.Duration) float64 {
	if got < 2 || elapsed <= 0 {
		return 0
	}
	return float64(got-1) / elapsed.Seconds()
}

// probeSeq marks the message that checks the consumers are live before a
// latency measurement starts.
const probeSeq = 99_999_999_999

// awaitProbe publishes probe messages until one comes back through handle
// (which closes ready), so that subscription start-up is not measured.
func awaitProbe(ctx context.Context, ready <-chan struct{}, send func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := send(); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		t := time.NewTimer(3 * time.Second)
		select {
		case <-ready:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return errors.New("probe: consumers did not receive a message within 15s")
}

// sendAtRate sends messages 0..n-1, message i at start + i*interval, from
// a pool of senders, so one slow send does not hold back the schedule.
// What a stalled send costs still shows: latency is measured from the
// intended time, not from when the send happened.
func sendAtRate(ctx context.Context, start time.Time, n int, interval time.Duration, senders int, send func(seq int64) error) error {
	ch := make(chan int64, n)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for seq := range ch {
				if err := send(seq); err != nil && ctx.Err() == nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			sleepCtx(ctx, d)
		}
		if ctx.Err() != nil {
			break
		}
		ch <- int64(i)
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// latencySenders is the publisher concurrency of the fixed-rate scenarios.
const latencySenders = 32

// probeHandler wraps observe: the probe message closes ready, the others
// go to the tracker once there is one.
type probeHandler struct {
	ready     chan struct{}
	readyOnce sync.Once
	tr        atomic.Pointer[tracker]
}

func newProbeHandler() *probeHandler { return &probeHandler{ready: make(chan struct{})} }

func (h *probeHandler) handle(p []byte) bool {
	if seq, ok := payloadSeq(p); ok && seq == probeSeq {
		h.readyOnce.Do(func() { close(h.ready) })
		return true
	}
	if t := h.tr.Load(); t != nil {
		t.observe(p)
	}
	return true
}

// latency sends messages at p.Rate for the latency window while
// p.Workers consumers receive them, and records each message's delay from
// its intended send time to its arrival.
func (r *runner) latency(ctx context.Context, inst *instance, p Params, res *Result) error {
	queue := r.env.queueName("latency")
	if err := inst.prepare(ctx, queue); err != nil {
		return fmt.Errorf("prepare %s: %w", queue, err)
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	h, publish, stop, err := probedConsumer(ctx, inst, queue, p.Workers, tmpl)
	if err != nil {
		return err
	}
	defer stop()
	return r.measureAtRate(ctx, h, p.Rate, r.sizes.Latency.D(), publish, res)
}

// probedConsumer starts workers consumers of queue with a probe handler
// and returns once a probe message went through them: the handler, a
// publish of numbered messages to queue, and the consumers' stop.
func probedConsumer(ctx context.Context, inst *instance, queue string, workers int, tmpl []byte) (*probeHandler, func(int64) error, func(), error) {
	h := newProbeHandler()
	stop, err := inst.consume(ctx, queue, workers, h.handle)
	if err != nil {
		return nil, nil, nil, err
	}
	publish := func(seq int64) error { return inst.publish(ctx, queue, [][]byte{newPayload(tmpl, seq)}) }
	if err := awaitProbe(ctx, h.ready, func() error { return publish(probeSeq) }); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return h, publish, stop, nil
}

// schedule is an open-loop send schedule: messages 0..n-1, message i
// intended at start + i*interval.
type schedule struct {
	start    time.Time
	interval time.Duration
	n        int
}

// newSchedule is rate messages a second for window, starting shortly.
func newSchedule(rate float64, window time.Duration) schedule {
	return schedule{
		start:    time.Now().Add(20 * time.Millisecond),
		interval: time.Duration(float64(time.Second) / rate),
		n:        max(1, int(rate*window.Seconds())),
	}
}

// tracker returns a tracker of the schedule's messages.
func (s schedule) tracker() *tracker { return newTracker(s.start, s.interval, s.n) }

// measureAtRate runs the open-loop schedule and fills res from the
// tracker.
func (r *runner) measureAtRate(ctx context.Context, h *probeHandler, rate float64, window time.Duration, publish func(int64) error, res *Result) error {
	s := newSchedule(rate, window)
	tr := s.tracker()
	h.tr.Store(tr)
	return r.runSchedule(ctx, s, tr, publish, res)
}

// runSchedule sends on s, waits for tr to see every message (or the
// drain to pass) and fills res from tr.
func (r *runner) runSchedule(ctx context.Context, s schedule, tr *tracker, publish func(int64) error, res *Result) error {
	sendErr := sendAtRate(ctx, s.start, s.n, s.interval, latencySenders, publish)
	tr.wait(s.start.Add(time.Duration(s.n)*s.interval + r.sizes.Drain.D()))
	lat, missing := tr.result(time.Now())
	res.Latency = lat
	res.Missing = missing
	res.Duplicates = tr.dups.Load()
	res.Messages = tr.received.Load()
	res.Seconds = (time.Duration(s.n) * s.interval).Seconds()
	res.Throughput = float64(res.Messages) / res.Seconds
	if sendErr != nil {
		return fmt.Errorf("send: %w", sendErr)
	}
	if res.Messages == 0 {
		return errNoMessages
	}
	if missing > 0 {
		res.Note = fmt.Sprintf("%d of %d not received within %s after the last send (counted at the time they had waited)", missing, s.n, r.sizes.Drain.D())
	}
	return nil
}

// roundTripRaw is the round trip of the topology written directly on a
// baseline: requests on one queue, a consumer (3 workers, as the seed's
// proposals consumer) publishing each request back as a reply on a second
// queue, consumed by 2 workers (the seed's consensus results consumer).
func (r *runner) roundTripRaw(ctx context.Context, inst *instance, p Params, res *Result) error {
	reqQ, repQ := r.env.queueName("rt_proposals"), r.env.queueName("rt_results")
	for _, q := range []string{reqQ, repQ} {
		if err := inst.prepare(ctx, q); err != nil {
			return fmt.Errorf("prepare %s: %w", q, err)
		}
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}
	workers := func(n int) int {
		if inst.maxWorkers > 0 {
			return min(n, inst.maxWorkers)
		}
		return n
	}
	var relayErr atomic.Pointer[error]
	relay := func(pl []byte) bool {
		reply := append([]byte(nil), pl...)
		if err := inst.publish(ctx, repQ, [][]byte{reply}); err != nil && ctx.Err() == nil {
			relayErr.CompareAndSwap(nil, &err)
		}
		return true
	}
	stopCentral, err := inst.consume(ctx, reqQ, workers(3), relay)
	if err != nil {
		return err
	}
	defer stopCentral()
	h := newProbeHandler()
	stopInstance, err := inst.consume(ctx, repQ, workers(2), h.handle)
	if err != nil {
		return err
	}
	defer stopInstance()
	publish := func(seq int64) error { return inst.publish(ctx, reqQ, [][]byte{newPayload(tmpl, seq)}) }
	if err := awaitProbe(ctx, h.ready, func() error { return publish(probeSeq) }); err != nil {
		return err
	}
	err = r.measureAtRate(ctx, h, p.Rate, r.sizes.RoundTrip.D(), publish, res)
	if e := relayErr.Load(); e != nil && err == nil {
		err = fmt.Errorf("reply: %w", *e)
	}
	return err
}
