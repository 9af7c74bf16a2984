package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// withSuffix returns cfg with every queue name suffixed. Each routed
// measurement gets queues of its own, so that nothing left over from an
// earlier measurement on the same server can arrive in it; the shape of
// the topology (producers, consumers, handlers, workers, priorities) is
// the seed's.
func withSuffix(cfg topology.ServiceConfig, suffix string) topology.ServiceConfig {
	cfg.Producers = slices.Clone(cfg.Producers)
	for i := range cfg.Producers {
		cfg.Producers[i].Queue += suffix
	}
	cfg.Consumers = slices.Clone(cfg.Consumers)
	for i := range cfg.Consumers {
		cfg.Consumers[i].Queue += suffix
	}
	return cfg
}

// loadProfile returns a service's configuration at a scaling profile,
// ignoring the process environment so that the run measures the seed's
// figures.
func loadProfile(service, profile string) (topology.ServiceConfig, error) {
	return topology.Load(topology.LoadOptions{
		Service:   service,
		LookupEnv: func(string) (string, bool) { return "", false },
		Overrides: topology.Overrides{Profile: profile},
	})
}

func noopHandler(*message.Message) error { return nil }

// instanceName is the instance id of the i-th Singularity router of a run.
func instanceName(i int) string { return fmt.Sprintf("sg-%d", i+1) }

// routers runs a set of routers until stop.
type routers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// startRouters starts the routers one after the other, each once the one
// before has subscribed. Started together, one router's queue declaration
// (a JetStream stream update) races in nats-server v2.15.2 with another's
// consumer creation on the same stream (filestore UpdateConfig against
// ConsumerStore, reported by the race detector).
func startRouters(ctx context.Context, rs []*router.Router) (*routers, error) {
	runCtx, cancel := context.WithCancel(ctx)
	g := &routers{cancel: cancel}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for _, rt := range rs {
		failed := make(chan error, 1)
		g.wg.Go(func() {
			if err := rt.Run(runCtx); err != nil {
				g.mu.Lock()
				g.errs = append(g.errs, err)
				g.mu.Unlock()
				failed <- err
			}
		})
		select {
		case <-rt.Running():
		case err := <-failed:
			_ = g.stop()
			return nil, err
		case <-timeout.C:
			_ = g.stop()
			return nil, errors.New("routers did not start within 60s")
		case <-ctx.Done():
			_ = g.stop()
			return nil, ctx.Err()
		}
	}
	return g, nil
}

func (g *routers) stop() error {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// newRouter builds a router with the harness's settings.
func (r *runner) newRouter(b *pubsub.Backend, svc topology.ServiceConfig, handlers map[string]router.Handler) (*router.Router, error) {
	return router.New(router.Config{
		Service:         svc,
		Backend:         b,
		Handlers:        handlers,
		Logger:          r.cfg.Logger,
		ShutdownTimeout: 10 * time.Second,
	})
}

// withDelivery returns cfg with queue's delivery set to d, on the side
// (producer or consumer) where cfg has it.
func withDelivery(cfg topology.ServiceConfig, queue string, d topology.Delivery) topology.ServiceConfig {
	cfg.Producers = slices.Clone(cfg.Producers)
	for i := range cfg.Producers {
		if cfg.Producers[i].Queue == queue {
			cfg.Producers[i].Delivery = d
		}
	}
	cfg.Consumers = slices.Clone(cfg.Consumers)
	for i := range cfg.Consumers {
		if cfg.Consumers[i].Queue == queue {
			cfg.Consumers[i].Delivery = d
		}
	}
	return cfg
}

// instanceProbeBase is the sequence number of the first instance's probe
// in a run with several instances (instance i sends instanceProbeBase+i),
// far above any measured message and distinct from probeSeq.
const instanceProbeBase = 900_000_000_000

// instanceProbes tells when every instance of a run has received a probe
// message, so that no instance's start-up is measured.
type instanceProbes struct {
	seen  []atomic.Bool
	left  atomic.Int64
	ready chan struct{}
}

func newInstanceProbes(n int) *instanceProbes {
	p := &instanceProbes{seen: make([]atomic.Bool, n), ready: make(chan struct{})}
	p.left.Store(int64(n))
	return p
}

// mark records that instance i received its probe.
func (p *instanceProbes) mark(i int) {
	if p.seen[i].CompareAndSwap(false, true) && p.left.Add(-1) == 0 {
		close(p.ready)
	}
}

// waiting returns the instances that have not received a probe yet.
func (p *instanceProbes) waiting() []int {
	var out []int
	for i := range p.seen {
		if !p.seen[i].Load() {
			out = append(out, i)
		}
	}
	return out
}

// roundTripRouter measures the topology's round trip through the router,
// as services run it: p.Instances Singularity routers (one when zero; ids
// sg-1, sg-2, …) and one CentralCloud router on one backend. Proposal i
// is published by instance i mod N; CentralCloud's
// handle_proposal_for_consensus answers it with Publisher.Reply; the
// instance's handle_consensus_result receives the result. Latency runs
// from the proposal's intended send time to the result's arrival at the
// instance that proposed it. A result that reaches another instance is
// misrouted: it counts as missing for its proposer, and any misroute
// fails the measurement. p.Delivery, when set, is consensus_results_queue's
// delivery on both services ("work": the round trip as it was before
// addressing).
func (r *runner) roundTripRouter(ctx context.Context, def *subjectDef, p Params, res *Result) error {
	inst, err := def.open(ctx, r.env)
	if err != nil {
		return err
	}
	defer inst.close()
	b := inst.backend
	suffix := fmt.Sprintf("_rt%d", r.env.seq.Add(1))
	ccCfg, _ := topology.Default(topology.CentralCloud)
	sgCfg, _ := topology.Default(topology.Singularity)
	ccCfg, sgCfg = withSuffix(ccCfg, suffix), withSuffix(sgCfg, suffix)
	if p.Delivery != "" {
		results := topology.ConsensusQueue + suffix
		ccCfg = withDelivery(ccCfg, results, topology.Delivery(p.Delivery))
		sgCfg = withDelivery(sgCfg, results, topology.Delivery(p.Delivery))
	}
	n := max(1, p.Instances)
	// proposer is the instance that publishes the message seq (a proposal
	// or a probe) and that its result must come back to.
	proposer := func(seq int64) int {
		if seq >= instanceProbeBase {
			return int(seq - instanceProbeBase)
		}
		return int(seq % int64(n))
	}

	h := newProbeHandler() // holds the tracker; the probes are per instance
	probes := newInstanceProbes(n)
	var misrouted atomic.Int64
	var consensus *router.Publisher
	cc, err := r.newRouter(b, ccCfg, map[string]router.Handler{
		topology.HandleProposalForConsensus: func(msg *message.Message) error {
			_, err := consensus.Reply(msg.Context(), msg, bytes.Clone(msg.Payload))
			return err
		},
		topology.HandleExecutionMetrics:  noopHandler,
		topology.HandlePatternDiscovered: noopHandler,
	})
	if err != nil {
		return err
	}
	if consensus, err = cc.Publisher(topology.ConsensusQueue + suffix); err != nil {
		return err
	}
	all := []*router.Router{cc}
	proposals := make([]*router.Publisher, n)
	for i := range n {
		cfg := sgCfg
		cfg.InstanceID = instanceName(i)
		sg, err := r.newRouter(b, cfg, map[string]router.Handler{
			topology.HandleConsensusResult: func(msg *message.Message) error {
				seq, ok := payloadSeq(msg.Payload)
				switch {
				case !ok:
					h.handle(msg.Payload) // the tracker counts it as bad
				case proposer(seq) != i:
					misrouted.Add(1)
				case seq >= instanceProbeBase:
					probes.mark(i)
				default:
					h.handle(msg.Payload)
				}
				return nil
			},
			topology.HandleRollbackTrigger:     noopHandler,
			topology.HandleSafetyProfileUpdate: noopHandler,
		})
		if err != nil {
			return err
		}
		if proposals[i], err = sg.Publisher(topology.ProposalsQueue + suffix); err != nil {
			return err
		}
		all = append(all, sg)
	}
	g, err := startRouters(ctx, all)
	if err != nil {
		return err
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		_ = g.stop()
		return err
	}
	publish := func(seq int64) error {
		_, err := proposals[proposer(seq)].Publish(ctx, newPayload(tmpl, seq))
		return err
	}
	err = awaitProbe(ctx, probes.ready, func() error {
		for _, i := range probes.waiting() {
			if err := publish(instanceProbeBase + int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = r.measureAtRate(ctx, h, p.Rate, r.sizes.RoundTrip.D(), publish, res)
	}
	if stopErr := g.stop(); err == nil && stopErr != nil {
		err = fmt.Errorf("router shutdown: %w", stopErr)
	}
	if res.Misrouted = misrouted.Load(); res.Misrouted > 0 {
		err = errors.Join(fmt.Errorf("%d consensus result(s) reached an instance other than their proposer", res.Misrouted), err)
	}
	return err
}

// mixedStream is one flow of messages in the mixed run.
type mixedStream struct {
	queue string
	// perInstance is the offered rate per Singularity instance, msg/s:
	// of a broadcast stream, what each instance receives (every instance
	// gets every message), which is the stream's own rate.
	perInstance float64
	// broadcast: every instance gets a copy of each message.
	broadcast bool
	// fromCentral: CentralCloud publishes (else the instances do).
	fromCentral bool
	// roundTrip: latency runs to the consensus result's arrival back at
	// an instance.
	roundTrip bool
}

// rate is the stream's offered rate with n instances, msg/s: a broadcast
// is counted once, though each of its messages reaches n instances.
func (s mixedStream) rate(n int) float64 {
	if s.broadcast {
		return s.perInstance
	}
	return s.perInstance * float64(n)
}

// mixedStreams is the offered load of the mixed run, per Singularity
// instance: proposals (each answered by a consensus result), execution
// metrics, discovered patterns; from CentralCloud rollback triggers and
// safety profile updates. A safety profile goes to every instance, so
// its rate is the stream's, not multiplied by the instances: until
// 2026-12 it was, and with n instances each received 0.5n profiles a
// second, 200 copies of 100 a second at 200 instances, a load growing
// with the square of the instances.
var mixedStreams = []mixedStream{
	{queue: topology.ProposalsQueue, perInstance: 4, roundTrip: true},
	{queue: topology.MetricsQueue, perInstance: 10},
	{queue: topology.PatternsQueue, perInstance: 2},
	{queue: topology.RollbackQueue, perInstance: 0.5, fromCentral: true},
	{queue: topology.SafetyProfilesQueue, perInstance: 0.5, fromCentral: true, broadcast: true},
}

// mixed runs the whole topology at a scaling profile: p.Instances
// Singularity routers and one CentralCloud router on one backend, every
// queue carrying its share of the offered load at once, every consumer
// with the profile's worker count.
func (r *runner) mixed(ctx context.Context, def *subjectDef, p Params, res *Result) error {
	inst, err := def.open(ctx, r.env)
	if err != nil {
		return err
	}
	defer inst.close()
	return r.mixedLoad(ctx, inst.backend, p, r.sizes.Mixed.D(), nil, res)
}

// mixedTopology is the routers and publishers of a mixed run, built and
// not yet started.
type mixedTopology struct {
	all []*router.Router
	// handlers observe each stream of mixedStreams, in its order.
	handlers []*probeHandler
	// pubs and senders are each stream's publishers and its concurrency
	// (the producer's workers, times the instances publishing it).
	pubs    [][]*router.Publisher
	senders []int
}

// buildMixed builds the routers of a mixed run on b: CentralCloud and
// p.Instances Singularity instances at p.Profile, on queues of their own.
func (r *runner) buildMixed(b *pubsub.Backend, p Params) (*mixedTopology, error) {
	suffix := fmt.Sprintf("_mx%d", r.env.seq.Add(1))
	ccCfg, err := loadProfile(topology.CentralCloud, p.Profile)
	if err != nil {
		return nil, err
	}
	sgCfg, err := loadProfile(topology.Singularity, p.Profile)
	if err != nil {
		return nil, err
	}
	ccCfg, sgCfg = withSuffix(ccCfg, suffix), withSuffix(sgCfg, suffix)

	t := &mixedTopology{handlers: make([]*probeHandler, len(mixedStreams)), pubs: make([][]*router.Publisher, len(mixedStreams)), senders: make([]int, len(mixedStreams))}
	byQueue := map[string]*probeHandler{}
	for i, s := range mixedStreams {
		t.handlers[i] = newProbeHandler()
		byQueue[s.queue] = t.handlers[i]
	}
	observe := func(queue string) router.Handler {
		h := byQueue[queue]
		return func(msg *message.Message) error {
			h.handle(msg.Payload)
			return nil
		}
	}
	var consensus *router.Publisher
	cc, err := r.newRouter(b, ccCfg, map[string]router.Handler{
		topology.HandleProposalForConsensus: func(msg *message.Message) error {
			_, err := consensus.Reply(msg.Context(), msg, bytes.Clone(msg.Payload))
			return err
		},
		topology.HandleExecutionMetrics:  observe(topology.MetricsQueue),
		topology.HandlePatternDiscovered: observe(topology.PatternsQueue),
	})
	if err != nil {
		return nil, err
	}
	if consensus, err = cc.Publisher(topology.ConsensusQueue + suffix); err != nil {
		return nil, err
	}
	t.all = []*router.Router{cc}
	var instances []*router.Router
	for i := range p.Instances {
		// Every instance gets every safety profile: one observes them, so
		// that each profile is counted once.
		profiles := noopHandler
		if i == 0 {
			profiles = observe(topology.SafetyProfilesQueue)
		}
		cfg := sgCfg
		cfg.InstanceID = instanceName(i)
		sg, err := r.newRouter(b, cfg, map[string]router.Handler{
			topology.HandleConsensusResult:     observe(topology.ProposalsQueue),
			topology.HandleRollbackTrigger:     observe(topology.RollbackQueue),
			topology.HandleSafetyProfileUpdate: profiles,
		})
		if err != nil {
			return nil, err
		}
		instances = append(instances, sg)
		t.all = append(t.all, sg)
	}
	for i, s := range mixedStreams {
		q := s.queue + suffix
		pubRouters, cfg := instances, sgCfg
		if s.fromCentral {
			pubRouters, cfg = []*router.Router{cc}, ccCfg
		}
		for _, rt := range pubRouters {
			pub, err := rt.Publisher(q)
			if err != nil {
				return nil, err
			}
			t.pubs[i] = append(t.pubs[i], pub)
		}
		prod, _ := cfg.Producer(q)
		t.senders[i] = max(1, prod.Workers) * len(pubRouters)
	}
	return t, nil
}

// mixedLoad builds and starts a mixed run's routers on b, offers the load
// for window and fills res. during, when set, runs while the routers run
// and the load is offered and drained (the instances scenario samples
// connections in it); its context is cancelled before the routers stop.
func (r *runner) mixedLoad(ctx context.Context, b *pubsub.Backend, p Params, window time.Duration, during func(context.Context), res *Result) error {
	t, err := r.buildMixed(b, p)
	if err != nil {
		return err
	}
	g, err := startRouters(ctx, t.all)
	if err != nil {
		return err
	}
	defer g.stop()
	if during != nil {
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			during(dctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		return err
	}

	start := time.Now().Add(50 * time.Millisecond)
	trackers := make([]*tracker, len(mixedStreams))
	counts := make([]int, len(mixedStreams))
	intervals := make([]time.Duration, len(mixedStreams))
	for i, s := range mixedStreams {
		rate := s.rate(p.Instances)
		counts[i] = max(1, int(rate*window.Seconds()))
		intervals[i] = time.Duration(float64(time.Second) / rate)
		trackers[i] = newTracker(start, intervals[i], counts[i])
		t.handlers[i].tr.Store(trackers[i])
	}
	var wg sync.WaitGroup
	sendErrs := make([]error, len(mixedStreams))
	for i := range mixedStreams {
		wg.Go(func() {
			sendErrs[i] = sendAtRate(ctx, start, counts[i], intervals[i], t.senders[i], func(seq int64) error {
				pub := t.pubs[i][int(seq)%len(t.pubs[i])]
				var opts []router.PublishOption
				if mixedStreams[i].queue == topology.RollbackQueue {
					// Addressed: to the instances in turn.
					opts = append(opts, router.To(instanceName(int(seq)%p.Instances)))
				}
				_, err := pub.Publish(ctx, newPayload(tmpl, seq), opts...)
				return err
			})
		})
	}
	wg.Wait()
	if err := errors.Join(sendErrs...); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return r.mixedResult(start, window, p, trackers, counts, intervals, res)
}

// mixedResult waits for each stream's stragglers and fills res: the
// queues' figures, the round trip's latency and delivered/offered.
func (r *runner) mixedResult(start time.Time, window time.Duration, p Params, trackers []*tracker, counts []int, intervals []time.Duration, res *Result) error {
	var offered float64
	var received, missing, dups int64
	for i, s := range mixedStreams {
		trackers[i].wait(start.Add(time.Duration(counts[i])*intervals[i] + r.sizes.Drain.D()))
		lat, miss := trackers[i].result(time.Now())
		rate := s.rate(p.Instances)
		q := QueueFigure{Queue: s.queue, Offered: rate, Messages: trackers[i].received.Load(), Missing: miss, Latency: lat, RoundTrip: s.roundTrip}
		res.Queues = append(res.Queues, q)
		offered += rate
		received += q.Messages
		missing += miss
		dups += trackers[i].dups.Load()
		if s.roundTrip {
			res.Latency = lat
		}
	}
	res.Rate = offered
	res.Messages = received
	res.Missing = missing
	res.Duplicates = dups
	res.Seconds = window.Seconds()
	res.Throughput = float64(received) / window.Seconds()
	sent := 0
	for _, n := range counts {
		sent += n
	}
	res.Ratios = []Ratio{{Baseline: "offered load", Metric: "delivered", BaselineValue: offered, Value: float64(received) / float64(sent)}}
	if missing > 0 {
		res.Note = fmt.Sprintf("%d messages not received within %s after the last send", missing, r.sizes.Drain.D())
	}
	if received == 0 {
		return errNoMessages
	}
	return nil
}
