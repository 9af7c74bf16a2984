// Package router runs one QuantumFlow service: it consumes the service's
// queues with their configured number of workers, through the middleware
// stack (telemetry, dead-lettering, retry, timeout, panic recovery), and
// hands out publishers for the service's producer queues.
//
//	backend, _ := pubsub.Open(ctx, cfg.BackendURL())
//	r, err := router.New(router.Config{
//		Service: cfg,
//		Backend: backend,
//		Handlers: map[string]router.Handler{
//			topology.HandleConsensusResult: handleConsensusResult,
//			...
//		},
//	})
//	...
//	err = r.Run(ctx) // until ctx is cancelled
//
// # Workers
//
// The Watermill Router has no worker count. Each consumer gets Workers
// subscriptions to its queue, each added as its own Watermill handler; a
// subscription holds one message at a time, so Workers is exactly how many
// messages of the queue the service handles at once. Every consumer has its
// own subscriptions, so a high-priority queue (rollback_triggers_queue)
// never waits behind a backlog elsewhere.
//
// # Instances
//
// Each router is one instance of its service (ServiceConfig.InstanceID).
// Run registers it in the backend's instance registry, refreshes the
// record every Heartbeat and removes it on shutdown; a second live process
// under the same service and id fails to start (pubsub.ErrInstanceTaken).
// How a queue's messages reach the instances follows its delivery mode
// (topology.Delivery):
//   - work: the instances' workers compete for every message;
//   - addressed: each message names its instance (To, or Reply to answer
//     a message: the router marks every message it publishes with its
//     instance, OriginOf), and only that instance's workers receive it;
//     To(pubsub.InstanceAll) sends a copy to every instance not gone
//     (a heartbeat within InstanceTTL);
//   - broadcast: every instance of the consuming service with a heartbeat
//     within BroadcastRetention gets a copy, kept for it while it is down;
//     an instance that registers for the first time, or after its copies
//     were dead-lettered, gets the latest message.
//
// Retries and dead letters are per copy: a dead letter's queue names its
// instance ("QUEUE@INSTANCE"), and retrying it goes back to that instance.
// A router that produces to addressed or broadcast queues dead-letters,
// with the reason "instance gone", what waits for instances without a
// heartbeat for long: on addressed queues for InstanceTTL (instance_ttl,
// 24h by default), on broadcast queues for BroadcastRetention
// (broadcast_retention, 7 days by default), so that an instance down for
// a while still finds its safety profiles. A message is never handed to
// another instance.
//
// # Typed handlers
//
// Handle turns a func(ctx, T, Meta) error into a Handler for a queue whose
// messages are a contract T (package contracts): each payload is decoded
// and validated first, and one that does not fit — malformed JSON, wrong
// types, missing fields, a schema version newer than T's — is
// dead-lettered at once with an error naming the queue and the field.
// Publish[T] validates and encodes a T, with the metadata naming its
// content type and schema.
//
// # Handler results
//
// A handler returns nil to ack. An error schedules a retry: the backend
// redelivers the message after retry_delay_ms, doubling each time
// (jittered, capped at 5 minutes), at most max_retries times; after that it
// moves the message to the dead-letter queue with the error, attempts,
// queue, handler and service. middleware.Permanent(err) dead-letters at
// once. A panic counts as an error. Each attempt gets HandlerTimeout: the
// handler should watch msg.Context().
//
// # Shutdown
//
// When Run's context is cancelled or Close is called, the router stops
// taking messages, lets in-flight handlers finish within ShutdownTimeout
// and acks (or retries, or dead-letters) what finished. Messages still
// being handled after that are given back to the backend, which delivers
// them again: nothing is lost, and a handler may see a message twice
// (delivery is at least once). Handlers keep a live context during
// ShutdownTimeout; after it their context is cancelled (on backends that
// derive message contexts from the subscription, as mem does) and Run
// returns within about a second more, with an error wrapping
// ErrShutdownTimeout.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Handler handles one message. Return nil to ack it; an error to have it
// retried later (and dead-lettered once retries run out); an error wrapped
// with middleware.Permanent to dead-letter it at once. Handle makes one
// of a typed function.
type Handler = message.NoPublishHandlerFunc

// Defaults.
const (
	DefaultHandlerTimeout  = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Errors.
var (
	// ErrRunning is returned by Run on a router that runs or ran already.
	ErrRunning = errors.New("router: already running")
	// ErrShutdownTimeout is wrapped by Run's error when in-flight handlers
	// did not finish within ShutdownTimeout. Their messages are redelivered.
	ErrShutdownTimeout = errors.New("router: in-flight handlers did not finish in time")
	// ErrSubscriptionsEnded is wrapped by Run's error when every
	// subscription ended without a shutdown being asked for (the backend
	// was closed or failed).
	ErrSubscriptionsEnded = errors.New("router: all subscriptions ended")
)

// Config configures a Router.
type Config struct {
	// Service is the service's configuration (from topology.Load). Required.
	Service topology.ServiceConfig
	// Backend is where the queues live. Required. The router does not
	// close it.
	Backend *pubsub.Backend
	// Handlers maps handler names (topology.Consumer.Handler) to
	// functions. Every consumer the router runs must have one.
	Handlers map[string]Handler
	// Logger logs retries, dead letters, panics and lifecycle. Nil
	// discards.
	Logger *slog.Logger
	// Telemetry is the bus events go to. Defaults to telemetry.Default.
	Telemetry *telemetry.Bus
	// HandlerTimeout bounds each attempt at handling a message. Defaults
	// to 30s.
	HandlerTimeout time.Duration
	// ShutdownTimeout bounds how long shutdown waits for in-flight
	// handlers. Defaults to 30s.
	ShutdownTimeout time.Duration
	// Queues restricts the router to the consumers of these queues; nil
	// means all of the service's consumers.
	Queues []string
	// MaxRetryDelay caps retry delays. Defaults to 5 minutes.
	MaxRetryDelay time.Duration
	// Middlewares are added to every consumer outside the standard stack
	// (the first is outermost), e.g. monitoring/tracing.Middleware, which
	// must see the whole attempt. Optional.
	Middlewares []message.HandlerMiddleware
	// WrapPublisher, when set, decorates the backend publisher that the
	// router's Publishers publish through, e.g.
	// monitoring/tracing.WrapPublisher. Optional.
	WrapPublisher func(message.Publisher) message.Publisher
	// Heartbeat is how often the router refreshes its instance's record
	// in the instance registry. Defaults to DefaultHeartbeat.
	Heartbeat time.Duration
	// InstanceTTL overrides the service's instance_ttl: how long an
	// instance of the consuming service may go without a heartbeat before
	// the messages addressed to it are dead-lettered ("instance gone"),
	// and before To(pubsub.InstanceAll) skips it. Defaults to
	// Service.InstanceTTL, else DefaultInstanceTTL. At least three
	// Heartbeats (the stale timeout), as a live instance could otherwise
	// count as gone between two of its heartbeats.
	InstanceTTL time.Duration
	// BroadcastRetention overrides the service's broadcast_retention: how
	// long an instance's copies of broadcast messages wait for it without
	// a heartbeat. A broadcast goes to every instance heard from within
	// it; the copies of an instance silent longer are dead-lettered
	// ("instance gone"), and it gets the queue's latest message when it
	// registers again. Defaults to Service.BroadcastRetention, else
	// DefaultBroadcastRetention. At least three Heartbeats, as
	// InstanceTTL.
	BroadcastRetention time.Duration
	// Version is the service's version, shown in the instance registry.
	// Optional.
	Version string
}

// Router runs one service's consumers and hands out its publishers.
type Router struct {
	cfg       Config
	consumers []topology.Consumer
	logger    *slog.Logger

	running   chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	mu      sync.Mutex
	started bool
	runErr  error

	pubMu sync.Mutex
	pubs  map[string]*Publisher

	nonce     string    // this process's mark in the instance registry
	startedAt time.Time // when New made the router
}

// New checks cfg and returns a Router. Its errors wrap
// topology.ErrInvalidConfig and name the missing or bad field, unknown
// queue (also wrapping pubsub.ErrQueueNotFound) or unregistered handler.
func New(cfg Config) (*Router, error) {
	if cfg.Service.Name == "" {
		return nil, fmt.Errorf("router: %w: Config.Service is required (Service.Name is empty)", topology.ErrInvalidConfig)
	}
	if cfg.Backend == nil {
		return nil, configError(cfg.Service.Name, "Config.Backend is required")
	}
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	consumers, err := checkedConsumers(cfg)
	if err != nil {
		return nil, err
	}
	return &Router{
		cfg:       cfg,
		consumers: consumers,
		logger:    cfg.Logger.With("service", cfg.Service.Name),
		running:   make(chan struct{}),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		pubs:      map[string]*Publisher{},
		nonce:     watermill.NewUUID(),
		startedAt: time.Now(),
	}, nil
}

// resolve gives cfg's zero fields their defaults, then checks the
// durations and the instance id.
func (cfg *Config) resolve() error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.Default
	}
	cfg.HandlerTimeout = cmp.Or(cfg.HandlerTimeout, DefaultHandlerTimeout)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.MaxRetryDelay = cmp.Or(cfg.MaxRetryDelay, middleware.DefaultMaxRetryDelay)
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	ttlFrom, retentionFrom := "Config.InstanceTTL", "Config.BroadcastRetention"
	if cfg.InstanceTTL == 0 {
		cfg.InstanceTTL, ttlFrom = cmp.Or(cfg.Service.InstanceTTL, DefaultInstanceTTL), "instance_ttl"
	}
	if cfg.BroadcastRetention == 0 {
		cfg.BroadcastRetention, retentionFrom = cmp.Or(cfg.Service.BroadcastRetention, DefaultBroadcastRetention), "broadcast_retention"
	}
	if cfg.Service.InstanceID == "" {
		cfg.Service.InstanceID = topology.DefaultInstanceID()
	}
	name := cfg.Service.Name
	switch {
	case cfg.HandlerTimeout < 0:
		return configError(name, "Config.HandlerTimeout must not be negative, got %s", cfg.HandlerTimeout)
	case cfg.ShutdownTimeout < 0:
		return configError(name, "Config.ShutdownTimeout must not be negative, got %s", cfg.ShutdownTimeout)
	case cfg.MaxRetryDelay < 0:
		return configError(name, "Config.MaxRetryDelay must not be negative, got %s", cfg.MaxRetryDelay)
	case cfg.Heartbeat < 0:
		return configError(name, "Config.Heartbeat must not be negative, got %s", cfg.Heartbeat)
	case cfg.InstanceTTL < 3*cfg.Heartbeat:
		return configError(name, "%s=%s is shorter than three heartbeats (%s): a live instance would count as gone",
			ttlFrom, cfg.InstanceTTL, 3*cfg.Heartbeat)
	case cfg.BroadcastRetention < 3*cfg.Heartbeat:
		return configError(name, "%s=%s is shorter than three heartbeats (%s): a live instance would count as gone",
			retentionFrom, cfg.BroadcastRetention, 3*cfg.Heartbeat)
	}
	if err := pubsub.ValidateInstanceID(cfg.Service.InstanceID); err != nil {
		return configError(name, "%w", err)
	}
	return nil
}

// checkedConsumers are the consumers cfg runs (see selectConsumers), once
// each is checked and has its handler registered.
func checkedConsumers(cfg Config) ([]topology.Consumer, error) {
	name := cfg.Service.Name
	consumers, err := selectConsumers(cfg.Service, cfg.Queues)
	if err != nil {
		return nil, err
	}
	for _, c := range consumers {
		if err := pubsub.ValidateQueueName(c.Queue); err != nil {
			return nil, configError(name, "consumer %s: %w", c.Key, err)
		}
		if c.Workers < 1 {
			return nil, configError(name, "consumer %s (queue %s): workers must be at least 1, got %d", c.Key, c.Queue, c.Workers)
		}
		if c.MaxRetries < 0 {
			return nil, configError(name, "consumer %s (queue %s): max_retries must not be negative, got %d", c.Key, c.Queue, c.MaxRetries)
		}
	}
	registered := make([]string, 0, len(cfg.Handlers))
	for h, fn := range cfg.Handlers {
		if fn != nil {
			registered = append(registered, h)
		}
	}
	selected := cfg.Service
	selected.Consumers = consumers
	if err := topology.ValidateHandlers(selected, registered); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return consumers, nil
}

// configError is an error of New: about the configuration of service
// name, wrapping topology.ErrInvalidConfig.
func configError(name, format string, args ...any) error {
	return fmt.Errorf("router %s: %w: "+format, append([]any{name, topology.ErrInvalidConfig}, args...)...)
}

func selectConsumers(svc topology.ServiceConfig, queues []string) ([]topology.Consumer, error) {
	if queues == nil {
		return slices.Clone(svc.Consumers), nil
	}
	if len(queues) == 0 {
		return nil, configError(svc.Name, "Config.Queues is empty (nil runs every consumer)")
	}
	var out []topology.Consumer
	for _, q := range queues {
		c, ok := svc.Consumer(q)
		if !ok {
			have := make([]string, 0, len(svc.Consumers))
			for _, c := range svc.Consumers {
				have = append(have, c.Queue)
			}
			return nil, configError(svc.Name, "Config.Queues: %w %q: the service does not consume it (it consumes: %s)",
				pubsub.ErrQueueNotFound, q, joinOrNone(have))
		}
		if !slices.ContainsFunc(out, func(x topology.Consumer) bool { return x.Queue == q }) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Service returns the service's name.
func (r *Router) Service() string { return r.cfg.Service.Name }

// InstanceID returns the id of the instance the router runs as.
func (r *Router) InstanceID() string { return r.cfg.Service.InstanceID }

// Consumers returns the consumers the router runs.
func (r *Router) Consumers() []topology.Consumer { return slices.Clone(r.consumers) }

// Running is closed once every worker has subscribed. It is never closed
// if Run fails before that.
func (r *Router) Running() <-chan struct{} { return r.running }

// Run declares the service's queues, subscribes Workers times to each
// consumed queue and handles messages until ctx is cancelled or Close is
// called; then it shuts down gracefully (see the package documentation)
// and returns. It returns nil after a clean shutdown, an error wrapping
// ErrShutdownTimeout if in-flight handlers outlived ShutdownTimeout, and
// an error wrapping ErrSubscriptionsEnded if the backend stopped
// delivering on its own. A Router runs once.
func (r *Router) Run(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return ErrRunning
	}
	r.started = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.runErr = err
		r.mu.Unlock()
		close(r.done)
	}()

	select {
	case <-r.closing:
		return nil
	default:
	}

	if err := r.declareQueues(ctx); err != nil {
		return err
	}
	if err := r.register(ctx); err != nil {
		return err
	}
	defer r.registered(ctx)()

	// Watermill's Close waits for its handlers with CloseTimeout, but a
	// message already on its way into the router when that wait starts is
	// not waited for (the router takes it after the wait has begun). So the
	// router counts in-flight messages itself (workers.take) and stops
	// taking messages before Watermill closes; Watermill's own wait is only
	// a short grace for the handler goroutines to return.
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: min(r.cfg.ShutdownTimeout, shutdownGrace)},
		watermill.NewSlogLoggerWithLevelMapping(r.logger, map[slog.Level]slog.Level{
			// Watermill logs its lifecycle at info and every nacked
			// attempt at error; retries and dead letters are logged by
			// the middleware already, with more to say.
			slog.LevelInfo:  slog.LevelDebug,
			slog.LevelError: slog.LevelWarn,
		}))
	if err != nil {
		return fmt.Errorf("router %s: %w", r.Service(), err)
	}

	// Backend subscriptions outlive the Watermill router's context: a
	// subscription whose context ends gives its in-flight message back,
	// so they end only after in-flight handlers have finished (or
	// ShutdownTimeout has passed).
	subCtx, cancelSubs := context.WithCancel(context.WithoutCancel(ctx))
	ws := &workers{subCtx: subCtx, stopTaking: make(chan struct{})}
	defer ws.forwarders.Wait()
	defer cancelSubs()

	n := r.addConsumers(wm, ws)
	if n == 0 {
		return fmt.Errorf("router %s: no consumers to run", r.Service())
	}

	return r.serve(ctx, wm, ws, cancelSubs, n)
}

// serve runs wm until ctx ends or Close is called, then shuts it down
// gracefully: workers stop taking messages, in-flight handlers get
// ShutdownTimeout, and what is still running is cancelled (cancelSubs),
// its messages given back.
func (r *Router) serve(ctx context.Context, wm *message.Router, ws *workers, cancelSubs context.CancelFunc, n int) error {
	runDone := make(chan error, 1)
	go func() { runDone <- wm.Run(context.WithoutCancel(ctx)) }()
	select {
	case <-wm.Running():
	case err := <-runDone:
		// Handlers that did subscribe are running: stop them.
		_ = wm.Close()
		if err == nil {
			err = ErrSubscriptionsEnded
		}
		return fmt.Errorf("router %s: start: %w", r.Service(), err)
	}
	r.logger.Info("router running", "consumers", len(r.consumers), "workers", n)
	close(r.running)

	select {
	case <-ctx.Done():
	case <-r.closing:
	case err := <-runDone:
		// Watermill closes itself when every subscription has ended.
		if err == nil {
			err = ErrSubscriptionsEnded
		}
		return fmt.Errorf("router %s: %w", r.Service(), err)
	}

	// Workers stop taking messages before the log line says so: a
	// handler that finishes after it must not take another.
	ws.halt()
	r.logger.Info("router shutting down", "timeout", r.cfg.ShutdownTimeout)
	finished := ws.stop(r.cfg.ShutdownTimeout)
	if !finished {
		// Cancel what is still running (handlers that watch their
		// context return) and give the messages back to the backend.
		cancelSubs()
	}
	_ = wm.Close() // its error only repeats a timeout reported below
	<-runDone
	cancelSubs()
	ws.forwarders.Wait()
	if !finished {
		return fmt.Errorf("router %s: %w after %s; their messages will be delivered again", r.Service(), ErrShutdownTimeout, r.cfg.ShutdownTimeout)
	}
	r.logger.Info("router stopped")
	return nil
}

// addConsumers adds Workers handlers per consumer to wm, each with its
// own subscription and the middleware stack, and returns how many.
func (r *Router) addConsumers(wm *message.Router, ws *workers) int {
	n := 0
	for _, c := range r.consumers {
		mws := middleware.Stack(middleware.StackConfig{
			Consumer: middleware.Consumer{Service: r.Service(), Handler: c.Handler, Queue: c.Queue},
			Retry: middleware.RetryPolicy{
				MaxRetries: c.MaxRetries,
				Delay:      retryDelay(c.RetryDelay),
				MaxDelay:   r.cfg.MaxRetryDelay,
			},
			Timeout:   r.cfg.HandlerTimeout,
			Telemetry: r.cfg.Telemetry,
			Logger:    r.cfg.Logger, // the middleware names the service itself
		})
		for i := 1; i <= c.Workers; i++ {
			sub := &workerSubscriber{ws: ws, backend: r.cfg.Backend.Subscriber(), closed: make(chan struct{})}
			h := wm.AddConsumerHandler(fmt.Sprintf("%s[%d]", c.Handler, i), r.subscribedQueue(c), sub, r.cfg.Handlers[c.Handler])
			h.AddMiddleware(append(slices.Clone(r.cfg.Middlewares), mws...)...)
			n++
		}
	}
	return n
}

// retryDelay maps a consumer's retry_delay_ms onto RetryPolicy.Delay, where
// zero means the default: retry_delay_ms 0 means retry at once.
func retryDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// shutdownGrace bounds how long shutdown waits for handler goroutines
// beyond ShutdownTimeout.
const shutdownGrace = time.Second

// declareQueues declares the queues the service consumes and produces, so
// that their priority (rollback_triggers_queue is high) and retry settings
// are known to the backend before the first message.
func (r *Router) declareQueues(ctx context.Context) error {
	declare := func(spec pubsub.QueueSpec) error {
		if err := r.cfg.Backend.DeclareQueue(ctx, spec); err != nil {
			return fmt.Errorf("router %s: declare queue %s: %w", r.Service(), spec.Name, err)
		}
		return nil
	}
	for _, c := range r.consumers {
		spec := c.Spec()
		spec.Name = r.subscribedQueue(c)
		if err := declare(spec); err != nil {
			return err
		}
	}
	for _, p := range r.cfg.Service.Producers {
		if err := declare(p.Spec()); err != nil {
			return err
		}
	}
	return nil
}

// Close stops a running router gracefully and waits for Run to return,
// returning Run's error. It is idempotent. Do not call it from a handler:
// Close waits for in-flight handlers, so from a handler cancel Run's
// context instead.
func (r *Router) Close() error {
	r.closeOnce.Do(func() { close(r.closing) })
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runErr
}

// workers is what the workers of one Run share.
type workers struct {
	// subCtx is the context of the backend subscriptions; it ends after
	// in-flight handlers have finished.
	subCtx context.Context
	// stopTaking is closed when shutdown begins: workers take no more
	// messages.
	stopTaking chan struct{}
	// forwarders counts running forwarder goroutines.
	forwarders sync.WaitGroup

	// mu guards the in-flight count: messages handed to the Watermill
	// router and not yet acked or nacked. Once stopped, none is added, so
	// a count that reached zero stays there.
	mu      sync.Mutex
	stopped bool
	n       int
	idle    []chan struct{}
}

// take counts one more message in flight, unless shutdown has begun.
func (w *workers) take() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.n++
	return true
}

// settled counts a message out of flight.
func (w *workers) settled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n--
	if w.n == 0 {
		for _, c := range w.idle {
			close(c)
		}
		w.idle = nil
	}
}

// halt makes workers take no more messages.
func (w *workers) halt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.stopped = true
		close(w.stopTaking)
	}
}

// stop makes workers take no more messages and waits up to d for the
// in-flight ones to be settled; it reports whether they all were.
func (w *workers) stop(d time.Duration) bool {
	w.halt()
	w.mu.Lock()
	if w.n == 0 {
		w.mu.Unlock()
		return true
	}
	idle := make(chan struct{})
	w.idle = append(w.idle, idle)
	w.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// workerSubscriber is one worker's subscription. It subscribes to the
// backend with a context that outlives the Watermill router's, forwards one
// message at a time to the router and waits for its Ack or Nack, until
// shutdown. A message it has taken but not forwarded stays un-acked and
// goes back to its queue when the backend subscription ends.
type workerSubscriber struct {
	ws        *workers
	backend   message.Subscriber
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *workerSubscriber) Subscribe(ctx context.Context, queue string) (<-chan *message.Message, error) {
	in, err := s.backend.Subscribe(s.ws.subCtx, queue)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.ws.forwarders.Add(1)
	go func() {
		defer s.ws.forwarders.Done()
		s.forward(ctx, in, out)
		close(out)
		// Wait for the backend subscription to end, so that Run returns
		// only once every message is settled or back in its queue. A
		// message received here is never handed out: it goes back.
		<-s.ws.subCtx.Done()
		for range in {
		}
	}()
	return out, nil
}

// forward runs until the Watermill router stops the worker or the backend
// subscription ends.
func (s *workerSubscriber) forward(ctx context.Context, in <-chan *message.Message, out chan<- *message.Message) {
	// untilClosed keeps out open after shutdown began, until the Watermill
	// router closes the worker: were out closed earlier, Watermill would
	// see every handler stop and close itself, logging an error.
	untilClosed := func() {
		select {
		case <-ctx.Done():
		case <-s.closed:
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-s.ws.stopTaking:
			untilClosed()
			return
		case msg, ok := <-in:
			if !ok {
				return
			}
			if !s.ws.take() {
				// Shutdown began: msg goes back to its queue when the
				// backend subscription ends.
				untilClosed()
				return
			}
			// Counted in flight: shutdown waits for it, so hand it over
			// even if shutdown begins now.
			select {
			case out <- msg:
			case <-ctx.Done():
				s.ws.settled()
				return
			case <-s.closed:
				s.ws.settled()
				return
			}
			select {
			case <-msg.Acked():
			case <-msg.Nacked():
			case <-ctx.Done():
				s.ws.settled()
				return
			case <-s.closed:
				s.ws.settled()
				return
			}
			s.ws.settled()
		}
	}
}

// Close stops the worker. The Watermill router calls it when it closes;
// the backend's shared subscriber is not closed.
func (s *workerSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
