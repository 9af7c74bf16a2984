package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// workQueues are the seed's queues the workload runs on: Singularity
// produces to them, CentralCloud consumes them.
var workQueues = []string{topology.ProposalsQueue, topology.MetricsQueue, topology.PatternsQueue}

// serviceConfig returns the seed's configuration of service, with every
// queue name suffixed and the process environment ignored, so that the
// run measures the seed's topology and nothing else.
func serviceConfig(service, instance, suffix string) (topology.ServiceConfig, error) {
	cfg, err := topology.Load(topology.LoadOptions{
		Service:   service,
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		return cfg, err
	}
	cfg.InstanceID = instance
	cfg.Producers = slices.Clone(cfg.Producers)
	for i := range cfg.Producers {
		cfg.Producers[i].Queue += suffix
	}
	cfg.Consumers = slices.Clone(cfg.Consumers)
	for i := range cfg.Consumers {
		cfg.Consumers[i].Queue += suffix
	}
	return cfg, nil
}

// payload is a good message's body: its index in the run and its
// intended send time.
type payload struct {
	N    int   `json:"n"`
	Sent int64 `json:"sent"`
}

// errMalformed is the reason a malformed message is dead-lettered with.
var errMalformed = errors.New("malformed payload")

// decode returns a good message's payload, or an error wrapping
// errMalformed.
func decode(b []byte) (payload, error) {
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if p.Sent == 0 {
		return p, fmt.Errorf("%w: no send time", errMalformed)
	}
	return p, nil
}

// Publish states of a message index.
const (
	notPublished = iota
	publishedGood
	publishedBad
)

// tally counts what happened to each message of a flow, by index.
type tally struct {
	mu        sync.Mutex
	published []uint8 // notPublished, publishedGood, publishedBad
	seen      []uint16
	latency   []time.Duration // first delivery's, from the intended send time
	firstSeen []time.Time

	consumed  atomic.Int64 // distinct messages
	pubErrors atomic.Int64
	// slowestPublish is the longest publish call, in nanoseconds.
	slowestPublish atomic.Int64
}

func newTally(n int) *tally {
	return &tally{published: make([]uint8, n), seen: make([]uint16, n), latency: make([]time.Duration, n), firstSeen: make([]time.Time, n)}
}

// observe records a delivery of good message n, intended to be sent at
// sent (Unix nanoseconds).
func (t *tally) observe(n int, sent int64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if n < 0 || n >= len(t.seen) {
		return
	}
	if t.seen[n] == 0 {
		t.consumed.Add(1)
		t.latency[n] = now.Sub(time.Unix(0, sent))
		t.firstSeen[n] = now
	}
	if t.seen[n] < ^uint16(0) {
		t.seen[n]++
	}
}

// handle is the CentralCloud handler of every work queue: a good message
// is counted, a malformed one dead-lettered at once with its reason.
func (t *tally) handle(msg *message.Message) error {
	p, err := decode(msg.Payload)
	if err != nil {
		return middleware.Permanent(fmt.Errorf("message %s: %w", msg.UUID, err))
	}
	t.observe(p.N, p.Sent)
	return nil
}

// flow is the workload of a scenario on one backend: a Singularity
// router's publishers and, unless another process consumes, a
// CentralCloud router consuming.
type flow struct {
	r       *run
	url     string
	suffix  string
	backend *pubsub.Backend
	queues  []string
	pubs    []*router.Publisher
	t       *tally

	cancel context.CancelFunc
	done   chan error
}

// openFlow opens the backend at url with room for n messages.
func (r *run) openFlow(ctx context.Context, url string, n int) (*flow, error) {
	b, err := pubsub.Open(ctx, url, pubsub.WithLogger(r.cfg.Logger))
	if err != nil {
		return nil, err
	}
	// As `quantumflow init` does before the services first start.
	if err := b.Init(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("init: %w", err)
	}
	f := &flow{r: r, url: url, suffix: r.env.suffix(), backend: b, t: newTally(n)}
	sgCfg, err := serviceConfig(topology.Singularity, "sg-1", f.suffix)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	sg, err := router.New(router.Config{Service: sgCfg, Backend: b, Logger: r.cfg.Logger, Handlers: noopHandlers(sgCfg)})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	for _, q := range workQueues {
		pub, err := sg.Publisher(q + f.suffix)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		f.queues = append(f.queues, q+f.suffix)
		f.pubs = append(f.pubs, pub)
	}
	return f, nil
}

// noopHandlers acks everything the service consumes.
func noopHandlers(cfg topology.ServiceConfig) map[string]router.Handler {
	hs := map[string]router.Handler{}
	for _, c := range cfg.Consumers {
		hs[c.Handler] = func(*message.Message) error { return nil }
	}
	return hs
}

// centralCloud returns a CentralCloud router consuming the flow's queues
// with handle, and extra middleware outermost.
func centralCloud(b *pubsub.Backend, suffix string, handle router.Handler, mw ...message.HandlerMiddleware) (*router.Router, error) {
	cfg, err := serviceConfig(topology.CentralCloud, "cc", suffix)
	if err != nil {
		return nil, err
	}
	hs := map[string]router.Handler{}
	for _, c := range cfg.Consumers {
		hs[c.Handler] = handle
	}
	return router.New(router.Config{
		Service: cfg, Backend: b, Handlers: hs, Middlewares: mw,
		// Short retries: a scenario's message waiting out a retry delay
		// of the seed's (1s, doubling) is slow, not wrong.
		MaxRetryDelay:   2 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	})
}

// consume starts CentralCloud in this process, returning once it runs.
func (f *flow) consume(ctx context.Context) error {
	cc, err := centralCloud(f.backend, f.suffix, f.t.handle)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- cc.Run(runCtx) }()
	select {
	case <-cc.Running():
		f.cancel, f.done = cancel, done
		return nil
	case err := <-done:
		cancel()
		return fmt.Errorf("centralcloud: %w", err)
	case <-time.After(time.Minute):
		cancel()
		return errors.New("centralcloud did not start within a minute")
	}
}

// stopConsuming stops the CentralCloud router started by consume.
func (f *flow) stopConsuming() error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	err := <-f.done
	f.cancel = nil
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// close stops consuming and closes the backend.
func (f *flow) close() error {
	err := f.stopConsuming()
	return errors.Join(err, f.backend.Close())
}

// id is message n's id.
func (f *flow) id(n int) string { return f.suffix + "-" + strconv.Itoa(n) }

// indexOf returns the index of a message id of this flow, or -1.
func (f *flow) indexOf(id string) int {
	rest, ok := strings.CutPrefix(id, f.suffix+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return n
}
