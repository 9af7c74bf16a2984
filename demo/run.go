package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Run runs the demo until every message has settled (consumed or
// dead-lettered, the backend idle), ctx is cancelled or Options.Timeout
// passes, and returns the summary. Progress lines ("demo: ...") go to w.
//
// Once the run has started, the summary comes back with any error: an
// interrupted or timed-out run still says where every message is, and
// lost messages are an error. When the run could not start (bad Options
// or configuration, an unreachable backend), the summary has no Queues.
func Run(ctx context.Context, opts Options, w io.Writer) (_ Summary, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	if w == nil {
		w = io.Discard
	}
	s := &session{opts: opts, w: w, start: time.Now(), sum: Summary{
		Instances: opts.Instances, Rounds: opts.Rounds, Namespace: opts.Namespace, Kept: opts.Keep || opts.Namespace == "",
	}}
	s.url = opts.URL
	if s.url == "" {
		srv, err := startServer(ctx, opts.DataDir, opts.Logger)
		if err != nil {
			return Summary{}, err
		}
		defer func() { err = errors.Join(err, srv.Close()) }()
		s.url = srv.URL()
		s.sum.Embedded, s.sum.DataDir = true, opts.DataDir
		s.progressf("%s", srv.Describe())
	}
	s.sum.Backend = pubsub.RedactURL(s.url)
	if err := s.loadConfigs(); err != nil {
		return Summary{}, err
	}
	if err := s.openAdmin(ctx); err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, s.closeAdmin(ctx)) }()

	s.runCtx, s.stopRouters = context.WithCancel(context.WithoutCancel(ctx))
	defer s.stopAll()
	instances, err := s.startNodes(ctx)
	if err != nil {
		return Summary{}, err
	}
	runErr := s.drive(ctx, instances)
	runErr = errors.Join(runErr, s.stopAll())
	s.bus.Detach("quantumflow-demo")
	return s.finish(ctx, instances, runErr)
}

// session is one run of the demo: its backend, its routers (nodes) and
// the tracker that counts what they publish and consume.
type session struct {
	opts  Options
	w     io.Writer
	start time.Time
	url   string
	sum   Summary
	// The two services' configurations, on the run's backend.
	ccCfg, sgCfg topology.ServiceConfig

	// admin declares the queues, reads what is left at the end and
	// removes the namespace.
	admin *pubsub.Backend
	bus   *telemetry.Bus
	track *tracker

	runCtx      context.Context
	stopRouters context.CancelFunc
	nodes       []*node
	stopOnce    sync.Once
	stopErr     error
}

func (s *session) progressf(format string, args ...any) {
	fmt.Fprintf(s.w, "demo: "+format+"\n", args...)
}

// loadConfigs loads both services' configurations, on the run's backend.
func (s *session) loadConfigs() error {
	load := func(service string) (topology.ServiceConfig, error) {
		lo := s.opts.Config
		lo.Service = service
		lo.Overrides.MessagingURL = s.url
		lo.Overrides.RetryDelay = s.opts.RetryDelay
		lo.Overrides.MaxRetries = s.opts.MaxRetries
		return topology.Load(lo)
	}
	var err error
	if s.ccCfg, err = load(topology.CentralCloud); err != nil {
		return err
	}
	s.ccCfg.InstanceID = topology.CentralCloud
	s.sgCfg, err = load(topology.Singularity)
	return err
}

// open opens the backend, in the run's namespace if it has one.
func (s *session) open(ctx context.Context) (*pubsub.Backend, error) {
	if s.opts.Namespace == "" {
		return pubsub.Open(ctx, s.url, pubsub.WithLogger(s.opts.Logger))
	}
	return pubsub.Open(ctx, s.url, pubsub.WithLogger(s.opts.Logger), pubsub.WithNamespace(s.opts.Namespace))
}

// openAdmin opens the admin backend, declares the topology's queues and
// attaches the tracker to a new telemetry bus.
func (s *session) openAdmin(ctx context.Context) error {
	var err error
	if s.admin, err = s.open(ctx); err != nil {
		return err
	}
	if _, err := topology.Init(ctx, s.admin, s.sgCfg); err != nil {
		return errors.Join(err, s.closeAdmin(ctx))
	}
	s.sum.Durable = s.admin.Capabilities().Has(pubsub.CapDurable)
	s.progressf("backend %s ready (capabilities: %s)", s.admin, s.admin.Capabilities())
	s.bus = telemetry.NewBus()
	s.bus.SetLogger(s.opts.Logger)
	s.track = newTracker()
	if err := s.bus.Attach("quantumflow-demo", telemetry.Prefix, s.track.handle); err != nil {
		return errors.Join(err, s.closeAdmin(ctx))
	}
	return nil
}

// closeAdmin removes the run's namespace, unless it is kept, and closes
// the admin backend.
func (s *session) closeAdmin(ctx context.Context) error {
	if s.sum.Kept {
		_ = s.admin.Close()
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.admin.DropNamespace(dctx); err != nil {
		return fmt.Errorf("remove the demo's namespace %s: %w", s.opts.Namespace, err)
	}
	return nil
}

// startNodes starts CentralCloud's router and one per Singularity
// instance, each on a backend of its own, and returns the instances.
func (s *session) startNodes(ctx context.Context) ([]*handlers.Singularity, error) {
	cc := &handlers.CentralCloud{Logger: s.opts.Logger.With("node", topology.CentralCloud)}
	if err := s.startNode(ctx, topology.CentralCloud, s.ccCfg, cc.Handlers(), cc.Bind); err != nil {
		return nil, err
	}
	instances := make([]*handlers.Singularity, s.opts.Instances)
	for i := range instances {
		name := fmt.Sprintf("singularity-%d", i+1)
		sg := &handlers.Singularity{Instance: name, Telemetry: s.bus, Logger: s.opts.Logger.With("node", name)}
		cfg := s.sgCfg
		cfg.InstanceID = name
		if err := s.startNode(ctx, name, cfg, sg.Handlers(), sg.Bind); err != nil {
			return nil, err
		}
		instances[i] = sg
	}
	s.progressf("running centralcloud and %d singularity instances, %d rounds each (retry delay %s, max retries %d)",
		s.opts.Instances, s.opts.Rounds, *s.opts.RetryDelay, *s.opts.MaxRetries)
	return instances, nil
}

// startNode opens a backend for one service instance and runs its router
// on it until the session stops the routers.
func (s *session) startNode(ctx context.Context, name string, cfg topology.ServiceConfig, h map[string]router.Handler, bind func(*router.Router) error) error {
	b, err := s.open(ctx)
	if err != nil {
		return err
	}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Handlers: h, Telemetry: s.bus,
		Logger:          s.opts.Logger.With("node", name),
		HandlerTimeout:  10 * time.Second,
		ShutdownTimeout: 10 * time.Second,
	})
	if err == nil {
		err = bind(r)
	}
	if err != nil {
		_ = b.Close()
		return err
	}
	n := &node{name: name, backend: b, router: r, done: make(chan error, 1)}
	go func() { n.done <- r.Run(s.runCtx) }()
	select {
	case <-r.Running():
		s.nodes = append(s.nodes, n)
		return nil
	case err := <-n.done:
		_ = b.Close()
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
		s.stopRouters()
		<-n.done
		_ = b.Close()
		return ctx.Err()
	}
}

// stopAll shuts the routers down gracefully (in-flight handlers finish,
// or their messages go back to the backend) and closes their backends.
// Only the first call does it; every call returns its error.
func (s *session) stopAll() error {
	s.stopOnce.Do(func() {
		s.stopRouters()
		for _, n := range s.nodes {
			if err := <-n.done; err != nil {
				s.stopErr = errors.Join(s.stopErr, fmt.Errorf("%s: %w", n.name, err))
			}
			_ = n.backend.Close()
		}
	})
	return s.stopErr
}

// drive runs the instances' rounds concurrently and waits until every
// message has settled, printing progress; it gives up on interrupt,
// timeout or a failed publish, and returns why.
func (s *session) drive(ctx context.Context, instances []*handlers.Singularity) error {
	workCtx, stopWork := context.WithCancel(ctx)
	var work sync.WaitGroup
	workErr := make(chan error, len(instances))
	for _, sg := range instances {
		work.Go(func() {
			if err := s.rounds(workCtx, sg); err != nil {
				workErr <- err
			}
		})
	}
	workDone := make(chan struct{})
	go func() { work.Wait(); close(workDone) }()
	err := s.awaitSettled(ctx, workDone, workErr)
	s.report()
	stopWork()
	<-workDone
	return err
}

// rounds sends an instance's rounds, one per Interval.
func (s *session) rounds(ctx context.Context, sg *handlers.Singularity) error {
	for n := range s.opts.Rounds {
		if _, err := sg.Send(ctx, handlers.PlanRound(sg.Instance, n)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s round %d: %w", sg.Instance, n, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.opts.Interval):
		}
	}
	return nil
}

// awaitSettled waits until the work is done and every message settled:
// every message of this run consumed or dead-lettered, and nothing left
// in the queues (messages an earlier run left in a kept DataDir
// included).
func (s *session) awaitSettled(ctx context.Context, workDone <-chan struct{}, workErr <-chan error) error {
	deadline := time.NewTimer(s.opts.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(s.opts.ProgressEvery)
	defer tick.Stop()
	check := time.NewTicker(20 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-deadline.C:
			return fmt.Errorf("messages did not settle within %s", s.opts.Timeout)
		case err := <-workErr:
			return err
		case <-tick.C:
			s.report()
		case <-check.C:
			select {
			case <-workDone:
				if s.track.settled() && backendIdle(ctx, s.admin) {
					s.sum.Settled = true
					return nil
				}
			default:
			}
		}
	}
}

// report prints the tracker's notes and counts so far.
func (s *session) report() {
	elapsed := time.Since(s.start).Seconds()
	for _, n := range s.track.takeNotes() {
		s.progressf("%5.1fs %s", elapsed, n)
	}
	p := s.track.progress()
	s.progressf("%5.1fs published %d, consumed %d, retries %d, dead-lettered %d, unsettled %d",
		elapsed, p.published, p.consumed, p.retried, p.deadLettered, p.open)
}

// finish asks the backend what is still there and completes the summary:
// per queue and in total, the routing table, and the run's error (lost or
// misrouted messages, profiles an instance missed).
func (s *session) finish(ctx context.Context, instances []*handlers.Singularity, runErr error) (Summary, error) {
	listCtx := context.WithoutCancel(ctx)
	waitInFlight(listCtx, s.admin, 3*time.Second)
	pending, dead, inFlight, err := backendIDs(listCtx, s.admin)
	if err != nil {
		return Summary{}, errors.Join(runErr, err)
	}
	sum := &s.sum
	sum.Queues = s.track.summarize(pending, dead, inFlight)
	sum.Total = total(sum.Queues)
	sum.Lost = sum.Total.Lost
	sum.Events = s.track.eventCounts()
	sum.Routing = routing(instances, s.track)
	for _, r := range sum.Routing {
		sum.Misrouted += r.ResultsForOthers + r.RollbacksForOthers
		if sum.Settled && r.ProfilesReceived != r.ProfilesPublished {
			runErr = errors.Join(runErr, fmt.Errorf("%s received %d of %d safety profiles", r.Instance, r.ProfilesReceived, r.ProfilesPublished))
		}
	}
	sum.DurationMS = time.Since(s.start).Milliseconds()
	if sum.Lost > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d message(s) lost", sum.Lost))
	}
	if sum.Misrouted > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d message(s) reached an instance they were not for", sum.Misrouted))
	}
	if runErr != nil {
		// Errors a driver formatted may repeat parts of the URL.
		runErr = pubsub.RedactError(runErr, pubsub.URLSecrets(s.url)...)
		sum.Error = runErr.Error()
	}
	return *sum, runErr
}

// total adds the queues' counts up.
func total(queues []QueueSummary) QueueSummary {
	t := QueueSummary{Queue: "total"}
	for _, q := range queues {
		t.Published += q.Published
		t.Consumed += q.Consumed
		t.Retried += q.Retried
		t.DeadLettered += q.DeadLettered
		t.Pending += q.Pending
		t.InFlight += q.InFlight
		t.Lost += q.Lost
		t.Redelivered += q.Redelivered
		t.Recovered += q.Recovered
	}
	return t
}
