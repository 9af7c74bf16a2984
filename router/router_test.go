package router_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 10 * time.Second

// openBackend opens a fresh in-memory backend for the test.
func openBackend(t *testing.T) *pubsub.Backend {
	t.Helper()
	name := strings.NewReplacer("/", "_", "#", "_").Replace(t.Name())
	b, err := pubsub.Open(context.Background(), "mem://"+name)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// service returns a service's seed configuration with fast retries.
func service(t *testing.T, name string, edit func(*topology.ServiceConfig)) topology.ServiceConfig {
	t.Helper()
	cfg, ok := topology.Default(name)
	require.True(t, ok)
	for i := range cfg.Consumers {
		cfg.Consumers[i].RetryDelay = 20 * time.Millisecond
	}
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

func consumer(cfg *topology.ServiceConfig, queue string) *topology.Consumer {
	for i := range cfg.Consumers {
		if cfg.Consumers[i].Queue == queue {
			return &cfg.Consumers[i]
		}
	}
	panic("no consumer for " + queue)
}

// recorder collects telemetry events.
type recorder struct {
	mu  sync.Mutex
	evs []recorded
}

type recorded struct {
	name string
	m    telemetry.Measurements
	md   telemetry.Metadata
}

func listen(t *testing.T) (*telemetry.Bus, *recorder) {
	t.Helper()
	bus := telemetry.NewBus()
	rec := &recorder{}
	require.NoError(t, bus.Attach("test", telemetry.Prefix, func(e telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.evs = append(rec.evs, recorded{e.Name(), m, md})
	}))
	return bus, rec
}

func (r *recorder) named(name string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, e := range r.evs {
		if e.name == name {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) count(name string) int { return len(r.named(name)) }

// start runs r in the background and waits until it is running. The
// returned function stops it and returns Run's error.
func start(t *testing.T, r *router.Router) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		cancel()
		require.NoError(t, err, "router stopped before running")
	case <-time.After(waitFor):
		cancel()
		t.Fatal("router did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitFor + 30*time.Second):
				err = errors.New("router did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func ok(*message.Message) error { return nil }

// publish publishes n messages to queue directly on the backend (as another
// service would), returning their ids.
func publish(t *testing.T, b *pubsub.Backend, queue string, n int, payload func(i int) string) []string {
	t.Helper()
	ids := make([]string, 0, n)
	msgs := make([]*message.Message, 0, n)
	for i := range n {
		id := fmt.Sprintf("m-%04d", i)
		ids = append(ids, id)
		msgs = append(msgs, message.NewMessage(id, []byte(payload(i))))
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	return ids
}

func deadLetters(t *testing.T, b *pubsub.Backend, queue string) []pubsub.DeadLetter {
	t.Helper()
	dls, err := b.ListDeadLetters(context.Background(), pubsub.DeadLetterQuery{Queue: queue})
	require.NoError(t, err)
	return dls
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cc := service(t, topology.CentralCloud, nil)
	all := map[string]router.Handler{
		topology.HandleProposalForConsensus: ok,
		topology.HandleExecutionMetrics:     ok,
		topology.HandlePatternDiscovered:    ok,
	}

	t.Run("MissingService", func(t *testing.T) {
		_, err := router.New(router.Config{Backend: b, Handlers: all})
		require.ErrorIs(t, err, topology.ErrInvalidConfig)
		require.ErrorContains(t, err, "Config.Service")
	})
	t.Run("MissingBackend", func(t *testing.T) {
		_, err := router.New(router.Config{Service: cc, Handlers: all})
		require.ErrorIs(t, err, topology.ErrInvalidConfig)
		require.ErrorContains(t, err, "Config.Backend")
	})
	t.Run("MissingHandler", func(t *testing.T) {
		h := map[string]router.Handler{
			topology.HandleProposalForConsensus: ok,
			topology.HandlePatternDiscovered:    ok,
		}
		_, err := router.New(router.Config{Service: cc, Backend: b, Handlers: h})
		require.ErrorIs(t, err, topology.ErrInvalidConfig)
		require.ErrorContains(t, err, `handler "handle_execution_metrics" is not registered`)
		require.ErrorContains(t, err, topology.MetricsQueue)
	})
	t.Run("NilHandlerCountsAsMissing", func(t *testing.T) {
		h := map[string]router.Handler{
			topology.HandleProposalForConsensus: ok,
			topology.HandleExecutionMetrics:     nil,
			topology.HandlePatternDiscovered:    ok,
		}
		_, err := router.New(router.Config{Service: cc, Backend: b, Handlers: h})
		require.ErrorContains(t, err, "handle_execution_metrics")
	})
	t.Run("QueuesSubsetNeedsOnlyItsHandlers", func(t *testing.T) {
		h := map[string]router.Handler{topology.HandlePatternDiscovered: ok}
		r, err := router.New(router.Config{Service: cc, Backend: b, Handlers: h, Queues: []string{topology.PatternsQueue}})
		require.NoError(t, err)
		require.Len(t, r.Consumers(), 1)
	})
	t.Run("UnknownQueue", func(t *testing.T) {
		_, err := router.New(router.Config{Service: cc, Backend: b, Handlers: all, Queues: []string{topology.RollbackQueue}})
		require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
		require.ErrorIs(t, err, topology.ErrInvalidConfig)
		require.ErrorContains(t, err, topology.RollbackQueue)
	})
	t.Run("NegativeDurations", func(t *testing.T) {
		for field, cfg := range map[string]router.Config{
			"Config.HandlerTimeout":  {HandlerTimeout: -time.Second},
			"Config.ShutdownTimeout": {ShutdownTimeout: -time.Second},
			"Config.MaxRetryDelay":   {MaxRetryDelay: -time.Second},
			"Config.Heartbeat":       {Heartbeat: -time.Second},
		} {
			cfg.Service, cfg.Backend, cfg.Handlers = cc, b, all
			_, err := router.New(cfg)
			require.ErrorIs(t, err, topology.ErrInvalidConfig, field)
			require.ErrorContains(t, err, field+" must not be negative")
		}
	})
	t.Run("BadWorkers", func(t *testing.T) {
		bad := service(t, topology.CentralCloud, func(c *topology.ServiceConfig) { consumer(c, topology.MetricsQueue).Workers = 0 })
		_, err := router.New(router.Config{Service: bad, Backend: b, Handlers: all})
		require.ErrorIs(t, err, topology.ErrInvalidConfig)
		require.ErrorContains(t, err, "workers must be at least 1")
		require.ErrorContains(t, err, topology.MetricsQueue)
	})
}

func TestPublisherOnlyForProducerQueues(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	r, err := router.New(router.Config{
		Service:  service(t, topology.Singularity, nil),
		Backend:  b,
		Handlers: map[string]router.Handler{topology.HandleConsensusResult: ok, topology.HandleRollbackTrigger: ok, topology.HandleSafetyProfileUpdate: ok},
	})
	require.NoError(t, err)
	_, err = r.Publisher(topology.RollbackQueue)
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
	require.ErrorContains(t, err, topology.RollbackQueue)
	p, err := r.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	require.Equal(t, topology.ProposalsQueue, p.Queue())
}

func TestWorkersAreConcurrentHandlers(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cfg := service(t, topology.CentralCloud, nil) // proposals: 3 workers
	var cur, peak atomic.Int32
	release := make(chan struct{})
	handler := func(msg *message.Message) error {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return nil
	}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Queues: []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	publish(t, b, topology.ProposalsQueue, 10, func(int) string { return "{}" })

	require.Eventually(t, func() bool { return cur.Load() == 3 }, waitFor, time.Millisecond)
	st, err := b.Stats(context.Background(), topology.ProposalsQueue)
	require.NoError(t, err)
	require.Equal(t, int64(3), st.InFlight)
	require.Equal(t, int64(7), st.Pending)
	close(release)
	require.Eventually(t, func() bool {
		st, err := b.Stats(context.Background(), topology.ProposalsQueue)
		return err == nil && st.Pending == 0 && st.InFlight == 0
	}, waitFor, 5*time.Millisecond)
	require.Equal(t, int32(3), peak.Load(), "never more than Workers at once")
	require.NoError(t, stop())
}

func TestFailingHandlerRetriedWithBackoffThenDeadLettered(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	bus, rec := listen(t)
	const delay = 50 * time.Millisecond
	cfg := service(t, topology.CentralCloud, func(c *topology.ServiceConfig) {
		consumer(c, topology.MetricsQueue).RetryDelay = delay
	})
	var mu sync.Mutex
	var attempts []int
	var times []time.Time
	handler := func(msg *message.Message) error {
		mu.Lock()
		attempts = append(attempts, pubsub.DeliveryOf(msg).Attempt)
		times = append(times, time.Now())
		mu.Unlock()
		return errors.New("guardian unavailable")
	}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Telemetry: bus, Queues: []string{topology.MetricsQueue},
		Handlers: map[string]router.Handler{topology.HandleExecutionMetrics: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	ids := publish(t, b, topology.MetricsQueue, 1, func(int) string { return `{"cpu":1}` })

	require.Eventually(t, func() bool { return len(deadLetters(t, b, topology.MetricsQueue)) == 1 }, waitFor, 5*time.Millisecond)
	dl := deadLetters(t, b, topology.MetricsQueue)[0]
	require.Equal(t, ids[0], dl.ID)
	require.Equal(t, topology.MetricsQueue, dl.Queue)
	require.Equal(t, "guardian unavailable", dl.Error)
	require.Equal(t, 4, dl.Attempts, "first attempt + max_retries 3")
	require.Equal(t, topology.HandleExecutionMetrics, dl.Handler)
	require.Equal(t, topology.CentralCloud, dl.Service)
	require.Equal(t, `{"cpu":1}`, string(dl.Payload))
	require.False(t, dl.FirstFailureAt.IsZero())
	require.False(t, dl.LastFailureAt.Before(dl.FirstFailureAt))

	mu.Lock()
	require.Equal(t, []int{1, 2, 3, 4}, attempts)
	// Each redelivery waits at least its (jittered by at most 20%) delay.
	for i := 1; i < len(times); i++ {
		minGap := time.Duration(float64(delay<<(i-1)) * 0.8)
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), minGap, "gap before attempt %d", i+1)
	}
	mu.Unlock()

	retried := rec.named("message_retried")
	require.Len(t, retried, 3)
	for i := 1; i < len(retried); i++ {
		require.Greater(t, retried[i].m["retry_delay_ms"], retried[i-1].m["retry_delay_ms"], "delays increase")
	}
	require.Equal(t, 4, rec.count("message_failed"))
	require.Equal(t, 1, rec.count("message_dead_lettered"))
	require.Zero(t, rec.count("message_consumed"))
	require.NoError(t, stop())
}

func TestRetryDoesNotBlockTheQueue(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cfg := service(t, topology.CentralCloud, func(c *topology.ServiceConfig) {
		p := consumer(c, topology.PatternsQueue) // 1 worker
		p.RetryDelay = time.Hour
		p.Workers = 1
	})
	var good atomic.Int32
	failed := make(chan struct{}, 1)
	handler := func(msg *message.Message) error {
		if string(msg.Payload) == "bad" {
			select {
			case failed <- struct{}{}:
			default:
			}
			return errors.New("cannot parse")
		}
		good.Add(1)
		return nil
	}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Queues: []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	publish(t, b, topology.PatternsQueue, 1, func(int) string { return "bad" })
	<-failed
	publish(t, b, topology.PatternsQueue, 5, func(int) string { return "good" })
	require.Eventually(t, func() bool { return good.Load() == 5 }, waitFor, time.Millisecond,
		"the single worker handles the others while the failed message waits an hour")
	st, err := b.Stats(context.Background(), topology.PatternsQueue)
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Scheduled)
	require.NoError(t, stop())
}

func TestPanicIsRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cfg := service(t, topology.Singularity, func(c *topology.ServiceConfig) {
		consumer(c, topology.SafetyProfilesQueue).MaxRetries = 1
	})
	var calls atomic.Int32
	handler := func(msg *message.Message) error {
		calls.Add(1)
		panic("nil profile")
	}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Queues: []string{topology.SafetyProfilesQueue},
		Handlers: map[string]router.Handler{topology.HandleSafetyProfileUpdate: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	// Safety profiles are broadcast: each instance has its own queue.
	mine := pubsub.InstanceQueue(topology.SafetyProfilesQueue, cfg.InstanceID)
	publish(t, b, mine, 1, func(int) string { return "{}" })
	require.Eventually(t, func() bool { return len(deadLetters(t, b, mine)) == 1 }, waitFor, 5*time.Millisecond)
	dl := deadLetters(t, b, mine)[0]
	require.Equal(t, "panic: nil profile", dl.Error)
	require.Equal(t, 2, dl.Attempts)
	require.Equal(t, topology.Singularity, dl.Service)
	require.Equal(t, topology.HandleSafetyProfileUpdate, dl.Handler)
	require.Equal(t, int32(2), calls.Load())
	require.NoError(t, stop())
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	var calls atomic.Int32
	handler := func(msg *message.Message) error {
		calls.Add(1)
		return middleware.Permanent(errors.New("unknown proposal schema"))
	}
	r, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	publish(t, b, topology.ProposalsQueue, 1, func(int) string { return "{}" })
	require.Eventually(t, func() bool { return len(deadLetters(t, b, topology.ProposalsQueue)) == 1 }, waitFor, 5*time.Millisecond)
	dl := deadLetters(t, b, topology.ProposalsQueue)[0]
	require.Equal(t, "unknown proposal schema", dl.Error)
	require.Equal(t, 1, dl.Attempts)
	require.Equal(t, int32(1), calls.Load())
	require.NoError(t, stop())
}

func TestTelemetryEndToEnd(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	bus, rec := listen(t)

	// CentralCloud consumes proposals and publishes a rollback trigger;
	// Singularity publishes the proposal and consumes the trigger.
	var ccRouter *router.Router
	proposal := func(msg *message.Message) error {
		pub, err := ccRouter.Publisher(topology.RollbackQueue)
		if err != nil {
			return err
		}
		_, err = pub.Reply(msg.Context(), msg, []byte(`{"rollback":true}`))
		return err
	}
	rolledBack := make(chan struct{})
	rollback := func(msg *message.Message) error {
		close(rolledBack)
		return nil
	}
	var err error
	ccRouter, err = router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Telemetry: bus,
		Queues:   []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: proposal},
	})
	require.NoError(t, err)
	sgRouter, err := router.New(router.Config{
		Service: service(t, topology.Singularity, nil), Backend: b, Telemetry: bus,
		Queues:   []string{topology.RollbackQueue},
		Handlers: map[string]router.Handler{topology.HandleRollbackTrigger: rollback},
	})
	require.NoError(t, err)
	stopCC := start(t, ccRouter)
	stopSG := start(t, sgRouter)

	pub, err := sgRouter.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	id, err := pub.Publish(context.Background(), []byte(`{"proposal":1}`), router.WithMetadata("origin", "test"))
	require.NoError(t, err)
	require.NotEmpty(t, id)
	select {
	case <-rolledBack:
	case <-time.After(waitFor):
		t.Fatal("rollback trigger not handled")
	}
	require.Eventually(t, func() bool { return rec.count("rollback_completed") == 1 }, waitFor, time.Millisecond)
	require.NoError(t, stopCC())
	require.NoError(t, stopSG())

	pp := rec.named("proposal_published")
	require.Len(t, pp, 1)
	require.Equal(t, id, pp[0].md["message_id"])
	require.Equal(t, topology.ProposalsQueue, pp[0].md["queue"])
	require.Equal(t, topology.Singularity, pp[0].md["service"])

	pr := rec.named("proposal_received")
	require.Len(t, pr, 1)
	require.Equal(t, id, pr[0].md["message_id"])
	require.Equal(t, topology.CentralCloud, pr[0].md["service"])
	require.Equal(t, topology.HandleProposalForConsensus, pr[0].md["handler"])
	require.Equal(t, 1.0, pr[0].m["attempt"])
	require.Contains(t, pr[0].m, "latency_ms")
	require.Contains(t, pr[0].m, "duration_ms")

	rt := rec.named("rollback_trigger_published")
	require.Len(t, rt, 1)
	require.Equal(t, 10, rt[0].md["priority"], "rollback triggers go out at high priority")

	require.Equal(t, 2, rec.count("message_published"))
	require.Equal(t, 2, rec.count("message_consumed"))
	require.Zero(t, rec.count("publish_failed"))
	require.Zero(t, rec.count("message_failed"))
}

func TestHighPriorityQueueHasItsOwnWorkers(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	block := make(chan struct{})
	defer close(block)
	var consensus atomic.Int32
	rolledBack := make(chan struct{})
	cfg := service(t, topology.Singularity, nil)
	r, err := router.New(router.Config{
		Service: cfg, Backend: b,
		HandlerTimeout: time.Minute, ShutdownTimeout: 50 * time.Millisecond,
		Handlers: map[string]router.Handler{
			topology.HandleConsensusResult: func(*message.Message) error {
				consensus.Add(1)
				<-block
				return nil
			},
			topology.HandleRollbackTrigger:     func(*message.Message) error { close(rolledBack); return nil },
			topology.HandleSafetyProfileUpdate: ok,
		},
	})
	require.NoError(t, err)
	stop := start(t, r)
	publish(t, b, pubsub.InstanceQueue(topology.ConsensusQueue, cfg.InstanceID), 50, func(int) string { return "{}" })
	require.Eventually(t, func() bool { return consensus.Load() == 2 }, waitFor, time.Millisecond)
	publish(t, b, pubsub.InstanceQueue(topology.RollbackQueue, cfg.InstanceID), 1, func(int) string { return "{}" })
	select {
	case <-rolledBack:
	case <-time.After(waitFor):
		t.Fatal("rollback waited behind the consensus backlog")
	}
	// The blocked consensus handlers outlive ShutdownTimeout.
	require.ErrorIs(t, stop(), router.ErrShutdownTimeout)
}

func TestGracefulShutdownUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	const n = 300
	ids := publish(t, b, topology.ProposalsQueue, n, func(i int) string { return fmt.Sprint(i) })

	var mu sync.Mutex
	handled := map[string]int{}
	var started, finished atomic.Int32
	handler := func(msg *message.Message) error {
		started.Add(1)
		defer finished.Add(1)
		time.Sleep(2 * time.Millisecond) // work; does not watch the context on purpose
		mu.Lock()
		handled[msg.UUID]++
		mu.Unlock()
		return nil
	}
	newRouter := func() *router.Router {
		r, err := router.New(router.Config{
			Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.ProposalsQueue},
			Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: handler},
		})
		require.NoError(t, err)
		return r
	}

	stop := start(t, newRouter())
	require.Eventually(t, func() bool { return finished.Load() >= n/5 }, waitFor, time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, started.Load(), finished.Load(), "every started handler completed before Run returned")
	mu.Lock()
	firstRun := len(handled)
	mu.Unlock()
	require.Less(t, firstRun, n, "shutdown happened under load")

	st, err := b.Stats(context.Background(), topology.ProposalsQueue)
	require.NoError(t, err)
	require.Zero(t, st.InFlight, "nothing is left in flight")
	require.Equal(t, int64(n-firstRun), st.Pending+st.Scheduled, "what was handled was acked; the rest is still queued")

	stop = start(t, newRouter())
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == n
	}, waitFor, 5*time.Millisecond)
	require.NoError(t, stop())
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		require.Equal(t, 1, handled[id], "message %s handled once", id)
	}
	require.Empty(t, deadLetters(t, b, topology.ProposalsQueue))
}

func TestCloseAndRunLifecycle(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	r, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: ok},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	require.NoError(t, r.Close())
	require.NoError(t, <-done)
	require.NoError(t, r.Close(), "idempotent")
	require.ErrorIs(t, r.Run(context.Background()), router.ErrRunning)

	queues, err := b.ListQueues(context.Background())
	require.NoError(t, err)
	var names []string
	for _, q := range queues {
		names = append(names, q.Name)
	}
	require.Contains(t, names, topology.PatternsQueue, "consumed queue declared")
	require.Contains(t, names, topology.RollbackQueue, "produced queue declared")
	for _, q := range queues {
		if q.Name == topology.RollbackQueue {
			require.Equal(t, pubsub.PriorityHigh, q.Priority)
		}
	}
}

func TestPublishMessagesBatch(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	bus, rec := listen(t)
	r, err := router.New(router.Config{
		Service: service(t, topology.Singularity, nil), Backend: b, Telemetry: bus,
		Queues: []string{topology.ConsensusQueue}, Handlers: map[string]router.Handler{topology.HandleConsensusResult: ok},
	})
	require.NoError(t, err)
	pub, err := r.Publisher(topology.MetricsQueue)
	require.NoError(t, err)
	msgs := []*message.Message{message.NewMessage("", []byte("a")), message.NewMessage("x-1", []byte("b"))}
	require.NoError(t, pub.PublishMessages(context.Background(), msgs...))
	require.NotEmpty(t, msgs[0].UUID)
	require.Equal(t, "x-1", msgs[1].UUID)
	pending, err := b.ListPending(context.Background(), topology.MetricsQueue, 10)
	require.NoError(t, err)
	require.Len(t, pending, 2)
	require.NotEmpty(t, pending[0].Metadata[telemetry.MetadataPublishedAt])
	mp := rec.named("metrics_published")
	require.Len(t, mp, 2)
	require.Equal(t, 2.0, mp[0].m["batch_size"])

	_, err = pub.Publish(context.Background(), []byte("c"), router.WithPriority(pubsub.PriorityHigh))
	require.NoError(t, err)
	pending, err = b.ListPending(context.Background(), topology.MetricsQueue, 10)
	require.NoError(t, err)
	require.Equal(t, "c", string(pending[0].Payload), "higher priority first")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = pub.Publish(ctx, []byte("d"))
	require.ErrorIs(t, err, context.Canceled)
}

// TestPublishWithIDAndDedupKey checks the publish options that make a
// publish idempotent: WithID gives the message the caller's id, and a
// second publish with the same WithDedupKey stores nothing and returns
// the id of the message stored first.
func TestPublishWithIDAndDedupKey(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	r, err := router.New(router.Config{
		Service: service(t, topology.Singularity, nil), Backend: b,
		Queues: []string{topology.ConsensusQueue}, Handlers: map[string]router.Handler{topology.HandleConsensusResult: ok},
	})
	require.NoError(t, err)
	pub, err := r.Publisher(topology.MetricsQueue)
	require.NoError(t, err)
	ctx := context.Background()

	id, err := pub.Publish(ctx, []byte("a"), router.WithID("metric-1"), router.WithDedupKey("run-7"))
	require.NoError(t, err)
	require.Equal(t, "metric-1", id)
	again, err := pub.Publish(ctx, []byte("b"), router.WithDedupKey("run-7"))
	require.NoError(t, err)
	require.Equal(t, "metric-1", again, "a duplicate returns the first message's id")
	other, err := pub.Publish(ctx, []byte("c"), router.WithDedupKey("run-8"))
	require.NoError(t, err)
	require.NotEqual(t, "metric-1", other)

	pending, err := b.ListPending(ctx, topology.MetricsQueue, 10)
	require.NoError(t, err)
	require.Len(t, pending, 2, "the duplicate stored nothing")
	require.Equal(t, "metric-1", pending[0].ID)
	require.Equal(t, "a", string(pending[0].Payload))
	require.Equal(t, other, pending[1].ID)
}

func TestBackendClosedWhileRunning(t *testing.T) {
	t.Parallel()
	b, err := pubsub.Open(context.Background(), "mem://")
	require.NoError(t, err)
	r, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: ok},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	require.NoError(t, b.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, router.ErrSubscriptionsEnded)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after the backend closed")
	}
}

func TestRunOnClosedBackendFails(t *testing.T) {
	t.Parallel()
	b, err := pubsub.Open(context.Background(), "mem://")
	require.NoError(t, err)
	require.NoError(t, b.Close())
	r, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: ok},
	})
	require.NoError(t, err)
	require.ErrorIs(t, r.Run(context.Background()), pubsub.ErrClosed)
}

// signalHandler is a slog.Handler that closes a channel when a record with
// the given message is logged.
type signalHandler struct {
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func TestShutdownLetsInFlightHandlersFinishAndAcksThem(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	shuttingDown := make(chan struct{})
	logger := slog.New(signalHandler{msg: "router shutting down", once: &sync.Once{}, ch: shuttingDown})
	release := make(chan struct{})
	var inHandler atomic.Int32
	var ctxErrSeen atomic.Bool
	handler := func(msg *message.Message) error {
		inHandler.Add(1)
		<-release
		if msg.Context().Err() != nil {
			ctxErrSeen.Store(true)
		}
		return nil
	}
	r, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Logger: logger,
		Queues:   []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: handler},
	})
	require.NoError(t, err)
	stop := start(t, r)
	publish(t, b, topology.ProposalsQueue, 10, func(int) string { return "{}" })
	require.Eventually(t, func() bool { return inHandler.Load() == 3 }, waitFor, time.Millisecond)

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-shuttingDown
	close(release)
	require.NoError(t, <-stopped)
	require.False(t, ctxErrSeen.Load(), "in-flight handlers keep a live context during the grace period")
	require.Equal(t, int32(3), inHandler.Load(), "no message taken after shutdown began")

	st, err := b.Stats(context.Background(), topology.ProposalsQueue)
	require.NoError(t, err)
	require.Equal(t, int64(7), st.Pending, "the 3 finished were acked, the rest wait")
	require.Zero(t, st.InFlight)
	require.Zero(t, st.DeadLetters)
}

// TestRunService checks that RunService refuses a configuration New
// refuses, and runs the router until its context ends, then returns
// what Run returns after a graceful shutdown.
func TestRunService(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	require.ErrorContains(t, router.RunService(context.Background(), router.Config{Backend: b}), "Config.Service is required")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, router.RunService(ctx, router.Config{
		Service: service(t, topology.Singularity, nil), Backend: b,
		Queues: []string{topology.ConsensusQueue}, Handlers: map[string]router.Handler{topology.HandleConsensusResult: ok},
	}))
	require.Error(t, ctx.Err(), "returned once its context ended")
}
