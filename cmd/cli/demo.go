package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	instances  int
	rounds     int
	interval   time.Duration
	retryDelay time.Duration
	maxRetries int
	timeout    time.Duration
	dataDir    string
	every      time.Duration // progress line interval
}

func (a *app) demoCommand() *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole topology in one process and report what happened to every message",
		Long: `demo runs CentralCloud and several Singularity instances in one process, each with
its own router and its own connection to a shared backend, and drives the
example handlers of examples/handlers through all six queues:

  - each instance proposes changes; CentralCloud votes and answers every
    proposal on consensus_results_queue (consensus_approved/consensus_rejected);
  - instances report execution metrics; a high error rate makes CentralCloud
    send a high-priority rollback trigger;
  - instances report patterns; unsafe ones make CentralCloud send a safety
    profile update;
  - some messages fail on purpose: flaky ones fail once and succeed on retry,
    poison proposals fail every attempt and end as dead letters, a malformed
    pattern is dead-lettered at once.

Progress goes to stderr. At the end a per-queue summary says, by message id,
how many were published, consumed, retried, dead-lettered, still pending and
lost (must be 0; the exit status is 1 otherwise). With --json the summary is
one JSON object.

The backend is an embedded NATS JetStream server in a temporary directory,
nothing to install; --data-dir keeps its data, so messages left by an
interrupted run are picked up by the next one (counted as "recovered").
--url runs the demo on another backend instead (mem://demo, a postgres://
URL). Worker counts come from the configuration as usual (--profile, the
QUANTUM_FLOW_*_WORKERS variables, --config); retries use --retry-delay and
--max-retries so that the demo finishes in seconds.`,
		Example: `  quantumflow demo
  quantumflow demo --json
  quantumflow demo --data-dir /tmp/qf-demo
  quantumflow demo --url mem://demo --instances 5 --rounds 40`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			switch {
			case o.instances < 1:
				return usageErrorf("--instances must be at least 1, got %d", o.instances)
			case o.rounds < 1:
				return usageErrorf("--rounds must be at least 1, got %d", o.rounds)
			case o.interval < 0, o.retryDelay < 0, o.timeout <= 0, o.every <= 0:
				return usageErrorf("--interval and --retry-delay must not be negative, --timeout and --progress must be positive")
			case o.maxRetries < 0:
				return usageErrorf("--max-retries must not be negative, got %d", o.maxRetries)
			case o.dataDir != "" && a.urlSet:
				return usageErrorf("--data-dir is for the embedded NATS server; it cannot be combined with --url")
			}
			return a.runDemo(ctx, cmd.OutOrStdout(), o)
		}),
	}
	f := c.Flags()
	f.IntVar(&o.instances, "instances", 3, "how many Singularity instances to run")
	f.IntVar(&o.rounds, "rounds", 20, "rounds of work per instance (a proposal, metrics and every other round a pattern)")
	f.DurationVar(&o.interval, "interval", 20*time.Millisecond, "pause between an instance's rounds")
	f.DurationVar(&o.retryDelay, "retry-delay", 50*time.Millisecond, "delay before the first retry (doubles each retry)")
	f.IntVar(&o.maxRetries, "max-retries", topology.DefaultMaxRetries, "retries before a failing message is dead-lettered")
	f.DurationVar(&o.timeout, "timeout", 45*time.Second, "give up waiting for messages to settle after this long")
	f.StringVar(&o.dataDir, "data-dir", "", "keep the embedded NATS server's data here (default: a temporary directory, removed at exit)")
	f.DurationVar(&o.every, "progress", 250*time.Millisecond, "how often to print progress on stderr")
	return c
}

// demoSummary is what the demo prints at the end.
type demoSummary struct {
	Backend    string             `json:"backend"`
	Embedded   bool               `json:"embedded"`
	Durable    bool               `json:"durable"`
	DataDir    string             `json:"data_dir,omitempty"`
	Instances  int                `json:"instances"`
	Rounds     int                `json:"rounds"`
	DurationMS int64              `json:"duration_ms"`
	Settled    bool               `json:"settled"`
	Queues     []demoQueueSummary `json:"queues"`
	Total      demoQueueSummary   `json:"total"`
	Lost       int                `json:"lost"`
	Events     map[string]int64   `json:"events"`
	Error      string             `json:"error,omitempty"`
}

// demoNode is one service instance: its own backend connection and router.
type demoNode struct {
	name    string
	backend *pubsub.Backend
	router  *router.Router
	done    chan error
}

func (a *app) runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	start := time.Now()
	// The demo's failures are on purpose and reported as progress; the
	// routers' logs are for --log-level.
	log := slog.New(slog.DiscardHandler)
	if a.logLevelSet {
		log = a.logger()
	}
	progressf := func(format string, args ...any) {
		fmt.Fprintf(a.env.Stderr, "demo: "+format+"\n", args...)
	}

	sum := demoSummary{Instances: o.instances, Rounds: o.rounds}
	url := ""
	if a.urlSet {
		url = a.url
	} else {
		srv, err := startDemoServer(ctx, o.dataDir, log)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := srv.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		url = srv.URL()
		sum.Embedded = srv.Embedded()
		sum.DataDir = o.dataDir
		progressf("%s", srv.Describe())
	}
	a.noteSecret(url)
	sum.Backend = pubsub.RedactURL(url)

	load := func(service string) (topology.ServiceConfig, error) {
		opts := a.loadOptions()
		opts.Service = service
		opts.Overrides.DatabaseURL = url
		opts.Overrides.RetryDelay = &o.retryDelay
		opts.Overrides.MaxRetries = &o.maxRetries
		return a.loadConfigWith(opts)
	}
	ccCfg, err := load(topology.CentralCloud)
	if err != nil {
		return err
	}
	sgCfg, err := load(topology.Singularity)
	if err != nil {
		return err
	}

	admin, err := pubsub.Open(ctx, url, pubsub.WithLogger(log))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := initBackend(ctx, admin, sgCfg); err != nil {
		return err
	}
	sum.Durable = admin.Capabilities().Has(pubsub.CapDurable)
	progressf("backend %s ready (capabilities: %s)", admin, admin.Capabilities())

	bus := telemetry.NewBus()
	bus.SetLogger(log)
	track := newTracker()
	if err := bus.Attach("quantumflow-demo", telemetry.Prefix, track.handle); err != nil {
		return err
	}

	runCtx, stopRouters := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouters()
	var nodes []*demoNode
	var stopOnce sync.Once
	var stopErr error
	// stopAll shuts the routers down gracefully (in-flight handlers finish,
	// or their messages go back to the backend) and closes their backends.
	stopAll := func() error {
		stopOnce.Do(func() {
			stopRouters()
			for _, n := range nodes {
				if rerr := <-n.done; rerr != nil {
					stopErr = errors.Join(stopErr, fmt.Errorf("%s: %w", n.name, rerr))
				}
				_ = n.backend.Close()
			}
		})
		return stopErr
	}
	defer stopAll()
	startNode := func(name string, cfg topology.ServiceConfig, h map[string]router.Handler, bind func(*router.Router) error) error {
		b, err := pubsub.Open(ctx, url, pubsub.WithLogger(log))
		if err != nil {
			return err
		}
		r, err := router.New(router.Config{
			Service: cfg, Backend: b, Handlers: h, Telemetry: bus,
			Logger:          log.With("node", name),
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
		n := &demoNode{name: name, backend: b, router: r, done: make(chan error, 1)}
		go func() { n.done <- r.Run(runCtx) }()
		select {
		case <-r.Running():
			nodes = append(nodes, n)
			return nil
		case err := <-n.done:
			_ = b.Close()
			return fmt.Errorf("%s: %w", name, err)
		case <-ctx.Done():
			stopRouters()
			<-n.done
			_ = b.Close()
			return ctx.Err()
		}
	}

	cc := &handlers.CentralCloud{Logger: log.With("node", topology.CentralCloud)}
	if err := startNode(topology.CentralCloud, ccCfg, cc.Handlers(), cc.Bind); err != nil {
		return err
	}
	instances := make([]*handlers.Singularity, o.instances)
	for i := range instances {
		name := fmt.Sprintf("singularity-%d", i+1)
		s := &handlers.Singularity{Instance: name, Telemetry: bus, Logger: log.With("node", name)}
		if err := startNode(name, sgCfg, s.Handlers(), s.Bind); err != nil {
			return err
		}
		instances[i] = s
	}
	progressf("running centralcloud and %d singularity instances, %d rounds each (retry delay %s, max retries %d)",
		o.instances, o.rounds, o.retryDelay, o.maxRetries)

	// The instances' work, concurrently.
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var work sync.WaitGroup
	workErr := make(chan error, len(instances))
	for _, s := range instances {
		work.Go(func() {
			for n := range o.rounds {
				if _, err := s.Send(workCtx, handlers.PlanRound(s.Instance, n)); err != nil {
					if workCtx.Err() == nil {
						workErr <- fmt.Errorf("%s round %d: %w", s.Instance, n, err)
					}
					return
				}
				select {
				case <-workCtx.Done():
					return
				case <-time.After(o.interval):
				}
			}
		})
	}
	workDone := make(chan struct{})
	go func() { work.Wait(); close(workDone) }()

	// Wait until the work is done and every message settled, printing
	// progress; give up on interrupt, timeout or a failed publish.
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	check := time.NewTicker(20 * time.Millisecond)
	defer check.Stop()
	var runErr error
	report := func() {
		for _, n := range track.takeNotes() {
			progressf("%5.1fs %s", time.Since(start).Seconds(), n)
		}
		p := track.progress()
		progressf("%5.1fs published %d, consumed %d, retries %d, dead-lettered %d, unsettled %d",
			time.Since(start).Seconds(), p.published, p.consumed, p.retried, p.deadLettered, p.open)
	}
wait:
	for {
		select {
		case <-ctx.Done():
			runErr = errors.New("interrupted")
			break wait
		case <-deadline.C:
			runErr = fmt.Errorf("messages did not settle within --timeout %s", o.timeout)
			break wait
		case err := <-workErr:
			runErr = err
			break wait
		case <-tick.C:
			report()
		case <-check.C:
			select {
			case <-workDone:
				// Settled: every message of this run consumed or
				// dead-lettered, and nothing left in the queues (messages
				// an earlier run left in a kept --data-dir included).
				if track.settled() && backendIdle(ctx, admin) {
					sum.Settled = true
					break wait
				}
			default:
			}
		}
	}
	report()
	stopWork()
	<-workDone

	// Then ask the backend what is still there.
	runErr = errors.Join(runErr, stopAll())
	bus.Detach("quantumflow-demo")
	listCtx := context.WithoutCancel(ctx)
	waitInFlight(listCtx, admin, 3*time.Second)
	pending, dead, inFlight, err := backendIDs(listCtx, admin)
	if err != nil {
		return errors.Join(runErr, err)
	}
	sum.Queues = track.summarize(pending, dead, inFlight)
	for _, q := range sum.Queues {
		sum.Total.Published += q.Published
		sum.Total.Consumed += q.Consumed
		sum.Total.Retried += q.Retried
		sum.Total.DeadLettered += q.DeadLettered
		sum.Total.Pending += q.Pending
		sum.Total.InFlight += q.InFlight
		sum.Total.Lost += q.Lost
		sum.Total.Redelivered += q.Redelivered
		sum.Total.Recovered += q.Recovered
	}
	sum.Total.Queue = "total"
	sum.Lost = sum.Total.Lost
	sum.Events = track.eventCounts()
	sum.DurationMS = time.Since(start).Milliseconds()
	if sum.Lost > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d message(s) lost", sum.Lost))
	}
	if runErr != nil {
		sum.Error = a.scrub(runErr.Error())
	}
	if err := a.printDemoSummary(out, sum); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// backendIdle reports whether no queue of the topology holds a message
// (pending, in flight or waiting for a retry).
func backendIdle(ctx context.Context, b *pubsub.Backend) bool {
	for _, q := range topology.QueueNames() {
		st, err := b.Stats(ctx, q)
		if err != nil || st.Pending+st.InFlight+st.Scheduled > 0 {
			return false
		}
	}
	return true
}

// waitInFlight waits, up to max, until the backend holds no message as in
// flight: the routers have stopped, and a message a worker had taken may
// take a moment to be given back.
func waitInFlight(ctx context.Context, b *pubsub.Backend, max time.Duration) {
	deadline := time.Now().Add(max)
	for {
		var n int64
		for _, q := range topology.QueueNames() {
			if st, err := b.Stats(ctx, q); err == nil {
				n += st.InFlight
			}
		}
		if n == 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backendIDs lists, per queue of the topology, the ids of the messages
// still pending and of the dead letters, and how many messages the backend
// still holds as in flight (delivered, neither acked nor given back; their
// ids cannot be listed).
func backendIDs(ctx context.Context, b *pubsub.Backend) (pending, dead map[string]map[string]struct{}, inFlight map[string]int, err error) {
	const limit = 100_000
	pending = map[string]map[string]struct{}{}
	dead = map[string]map[string]struct{}{}
	inFlight = map[string]int{}
	for _, q := range topology.QueueNames() {
		pending[q] = map[string]struct{}{}
		dead[q] = map[string]struct{}{}
		msgs, err := b.ListPending(ctx, q, limit)
		if err != nil && !errors.Is(err, pubsub.ErrQueueNotFound) {
			return nil, nil, nil, fmt.Errorf("pending of queue %s: %w", q, err)
		}
		for _, m := range msgs {
			pending[q][m.ID] = struct{}{}
		}
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: q, Limit: limit})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("dead letters of queue %s: %w", q, err)
		}
		for _, d := range dls {
			dead[q][d.ID] = struct{}{}
		}
		st, err := b.Stats(ctx, q)
		if err != nil && !errors.Is(err, pubsub.ErrQueueNotFound) {
			return nil, nil, nil, fmt.Errorf("stats of queue %s: %w", q, err)
		}
		inFlight[q] = int(st.InFlight)
	}
	return pending, dead, inFlight, nil
}

func (a *app) printDemoSummary(out io.Writer, s demoSummary) error {
	if a.jsonOut {
		return writeJSONLine(out, s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "QuantumFlow demo on %s: centralcloud + %d singularity instances, %d rounds, %.1fs\n\n",
		s.Backend, s.Instances, s.Rounds, float64(s.DurationMS)/1000)
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	t := newTable(out, "QUEUE", "PUBLISHED", "CONSUMED", "RETRIED", "DEAD-LETTERED", "PENDING", "LOST")
	for _, q := range append(s.Queues, s.Total) {
		t.row(q.Queue, strconv.Itoa(q.Published), strconv.Itoa(q.Consumed), strconv.Itoa(q.Retried),
			strconv.Itoa(q.DeadLettered), strconv.Itoa(q.Pending+q.InFlight), strconv.Itoa(q.Lost))
	}
	if err := t.flush(); err != nil {
		return err
	}
	b.Reset()
	e := s.Events
	fmt.Fprintf(&b, "\nconsensus: %d approved, %d rejected; rollbacks completed: %d; safety profile updates: %d\n",
		e[telemetry.NameConsensusApproved], e[telemetry.NameConsensusRejected], e[telemetry.NameRollbackCompleted], e[telemetry.NameProfileUpdated])
	if s.Total.Redelivered > 0 || s.Total.Recovered > 0 {
		fmt.Fprintf(&b, "redelivered after success: %d; recovered from an earlier run: %d\n", s.Total.Redelivered, s.Total.Recovered)
	}
	switch {
	case s.Lost > 0:
		fmt.Fprintf(&b, "LOST: %d message(s)\n", s.Lost)
	case s.Settled:
		fmt.Fprintf(&b, "lost: 0 — every message was consumed or dead-lettered\n")
	default:
		fmt.Fprintf(&b, "lost: 0 — %d message(s) still in the backend", s.Total.Pending+s.Total.InFlight)
		if s.Total.InFlight > 0 {
			fmt.Fprintf(&b, " (%d of them held as in flight: they come back when their lease runs out)", s.Total.InFlight)
		}
		b.WriteString("\n")
	}
	switch {
	case s.Total.DeadLettered == 0 || !s.Durable:
	case !s.Embedded:
		fmt.Fprintf(&b, "inspect the dead letters: quantumflow dlq list --url %s\n", s.Backend)
	case s.DataDir != "":
		fmt.Fprintf(&b, "the dead letters stay in %s (run the demo again with --data-dir to add to them)\n", s.DataDir)
	}
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
