package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// DefaultDLQAlertThreshold is the seed's production alert: more than 100
// dead letters.
const DefaultDLQAlertThreshold = 100

// DefaultPollInterval is how often a Poller reads the backend's stats.
const DefaultPollInterval = 10 * time.Second

// DefaultInstanceStaleAfter is how long an instance may go without a
// heartbeat and still be live: three of a router's heartbeats, as the
// routers and `quantumflow instances` count.
const DefaultInstanceStaleAfter = router.DefaultStaleAfter

// DefaultMaxInstanceQueueSeries is how many instance queues a Poller
// exports one by one at most; see the package documentation.
const DefaultMaxInstanceQueueSeries = 1000

// OtherInstances is the instance_id under which the instance queues past
// PollerOptions.MaxInstanceQueueSeries are summed. No instance id has
// parentheses.
const OtherInstances = "(other)"

// InstanceLister is the instance registry as the Poller reads it;
// *pubsub.Backend is one.
type InstanceLister interface {
	Instances(ctx context.Context) ([]pubsub.Instance, error)
}

// PollerOptions configure NewPoller.
type PollerOptions struct {
	// Admin is the backend whose queues are polled. Required. When it is
	// also an InstanceLister (a *pubsub.Backend is) with an instance
	// registry, quantumflow_instances is exported and instance queues are
	// exported while their instance is not gone or they hold anything.
	Admin pubsub.Admin
	// Metrics receives the gauges. Required.
	Metrics *Metrics
	// Interval between polls. Defaults to DefaultPollInterval.
	Interval time.Duration
	// DLQAlertThreshold is the number of dead letters (all queues) above
	// which the backend is degraded: the alert gauge goes to 1 and a
	// warning is logged. Defaults to DefaultDLQAlertThreshold.
	DLQAlertThreshold int
	// InstanceStaleAfter is how long an instance may go without a
	// heartbeat and still be live. Defaults to DefaultInstanceStaleAfter.
	InstanceStaleAfter time.Duration
	// InstanceTTL is how long an instance may go without a heartbeat
	// before it is gone: pass the service's instance_ttl
	// (topology.ServiceConfig.InstanceTTL), as `quantumflow serve` does, so
	// that it agrees with the routers. Defaults to router.DefaultInstanceTTL
	// (24h).
	InstanceTTL time.Duration
	// MaxInstanceQueueSeries is how many instance queues are exported one
	// by one at most; the rest are summed per queue under instance_id
	// OtherInstances. Defaults to DefaultMaxInstanceQueueSeries.
	MaxInstanceQueueSeries int
	// Logger logs the alert and poll failures. Nil discards.
	Logger *slog.Logger
}

// Snapshot is the result of one poll.
type Snapshot struct {
	At          time.Time           `json:"at"`
	Queues      []pubsub.QueueStats `json:"queues"`
	DeadLetters int64               `json:"dead_letters"`
	Threshold   int                 `json:"threshold"`
	Degraded    bool                `json:"degraded"`
	// Instances counts the registry's instances by service, then state;
	// nil when the backend keeps no registry.
	Instances map[string]map[string]int `json:"instances,omitempty"`
}

// Poller refreshes the per-queue gauges from Admin.Stats, and
// quantumflow_instances from the instance registry.
type Poller struct {
	opts PollerOptions
	log  *slog.Logger

	mu       sync.Mutex
	services map[string]bool // with quantumflow_instances series
	degraded bool
	failing  bool
	last     Snapshot
}

// NewPoller returns a poller; start it with Run.
func NewPoller(opts PollerOptions) (*Poller, error) {
	if opts.Admin == nil {
		return nil, errors.New("metrics: PollerOptions.Admin is required")
	}
	if opts.Metrics == nil {
		return nil, errors.New("metrics: PollerOptions.Metrics is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultPollInterval
	}
	if opts.DLQAlertThreshold <= 0 {
		opts.DLQAlertThreshold = DefaultDLQAlertThreshold
	}
	if opts.InstanceStaleAfter <= 0 {
		opts.InstanceStaleAfter = DefaultInstanceStaleAfter
	}
	if opts.InstanceTTL <= 0 {
		opts.InstanceTTL = router.DefaultInstanceTTL
	}
	if opts.MaxInstanceQueueSeries <= 0 {
		opts.MaxInstanceQueueSeries = DefaultMaxInstanceQueueSeries
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := opts.Metrics.opts.Backend
	opts.Metrics.threshold.WithLabelValues(b).Set(float64(opts.DLQAlertThreshold))
	return &Poller{opts: opts, log: log, services: map[string]bool{}}, nil
}

// Run polls at once and then every Interval until ctx is done. It returns
// nil when ctx is cancelled; poll failures are logged and exported
// (quantumflow_backend_up 0), never fatal.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		_, _ = p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Last returns the most recent successful snapshot (zero before the first).
func (p *Poller) Last() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Poll reads every queue's stats and the instance registry once and
// updates the gauges.
func (p *Poller) Poll(ctx context.Context) (Snapshot, error) {
	m := p.opts.Metrics
	b := m.opts.Backend
	snap, live, err := p.read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Snapshot{}, err
		}
		m.up.WithLabelValues(b).Set(0)
		m.polls.WithLabelValues(b, "error").Inc()
		p.mu.Lock()
		first := !p.failing
		p.failing = true
		p.mu.Unlock()
		if first {
			p.log.Warn("queue stats poll failed", "backend", b, "error", err)
		}
		return Snapshot{}, err
	}
	m.up.WithLabelValues(b).Set(1)
	m.polls.WithLabelValues(b, "ok").Inc()

	m.queues.set(p.queueSeries(snap, live))
	m.deadTotal.WithLabelValues(b).Set(float64(snap.DeadLetters))
	alert := 0.0
	if snap.Degraded {
		alert = 1
	}
	m.alert.WithLabelValues(b).Set(alert)

	p.mu.Lock()
	p.setInstances(snap)
	wasDegraded, wasFailing := p.degraded, p.failing
	p.degraded, p.failing = snap.Degraded, false
	p.last = snap
	p.mu.Unlock()

	if wasFailing {
		p.log.Info("queue stats poll recovered", "backend", b)
	}
	switch {
	case snap.Degraded && !wasDegraded:
		p.log.Warn("dead letters above alert threshold: degraded",
			"backend", b, "dead_letters", snap.DeadLetters, "threshold", snap.Threshold)
	case !snap.Degraded && wasDegraded:
		p.log.Info("dead letters back under alert threshold",
			"backend", b, "dead_letters", snap.DeadLetters, "threshold", snap.Threshold)
	}
	return snap, nil
}

// read reads the queues' stats and the instance registry, and returns
// them with the ids of the instances that are not gone (nil without a
// registry).
func (p *Poller) read(ctx context.Context) (Snapshot, map[string]bool, error) {
	queues, err := p.opts.Admin.ListQueues(ctx)
	if err != nil {
		return Snapshot{}, nil, fmt.Errorf("list queues: %w", err)
	}
	snap := Snapshot{At: time.Now(), Threshold: p.opts.DLQAlertThreshold}
	for _, q := range queues {
		s, err := p.opts.Admin.Stats(ctx, q.Name)
		if errors.Is(err, pubsub.ErrQueueNotFound) {
			continue // removed between the listing and now
		}
		if err != nil {
			return Snapshot{}, nil, fmt.Errorf("stats %s: %w", q.Name, err)
		}
		if s.Queue == "" {
			s.Queue = q.Name
		}
		snap.Queues = append(snap.Queues, s)
		snap.DeadLetters += s.DeadLetters
	}
	snap.Degraded = snap.DeadLetters > int64(snap.Threshold)
	var live map[string]bool
	if reg, ok := p.opts.Admin.(InstanceLister); ok {
		all, err := reg.Instances(ctx)
		switch {
		case errors.Is(err, pubsub.ErrUnsupported):
		case err != nil:
			return Snapshot{}, nil, fmt.Errorf("list instances: %w", err)
		default:
			snap.Instances, live = map[string]map[string]int{}, map[string]bool{}
			for _, i := range all {
				state := i.State(snap.At, p.opts.InstanceStaleAfter, p.opts.InstanceTTL)
				if snap.Instances[i.Service] == nil {
					snap.Instances[i.Service] = map[string]int{}
				}
				snap.Instances[i.Service][state]++
				if state != pubsub.InstanceGone {
					live[i.ID] = true
				}
			}
		}
	}
	return snap, live, nil
}

// queueSeries returns the gauges' series of snap: every queue's, and the
// instance queues' within the bounds the package documentation describes
// (live holds the ids of the instances not gone; nil without a registry).
func (p *Poller) queueSeries(snap Snapshot, live map[string]bool) []queueSeries {
	values := func(s pubsub.QueueStats) [numQueueGauges]float64 {
		return [numQueueGauges]float64{
			gaugePending: float64(s.Pending), gaugeInFlight: float64(s.InFlight), gaugeScheduled: float64(s.Scheduled),
			gaugeDeadLetters: float64(s.DeadLetters), gaugeOldestAge: s.OldestPendingAge.Seconds(),
			gaugePaused: boolGauge(s.Paused),
		}
	}
	var out []queueSeries
	var inst []pubsub.QueueStats
	for _, s := range snap.Queues {
		queue, instance := pubsub.SplitInstanceQueue(s.Queue)
		switch {
		case instance == "":
			out = append(out, queueSeries{queue: queue, values: values(s)})
		case live == nil || live[instance] || s.Pending+s.InFlight+s.Scheduled+s.DeadLetters > 0:
			inst = append(inst, s)
		}
	}
	// Name order keeps the same instance queues exported one by one from
	// poll to poll.
	slices.SortFunc(inst, func(a, b pubsub.QueueStats) int { return cmp.Compare(a.Queue, b.Queue) })
	other := map[string]*queueSeries{}
	for i, s := range inst {
		queue, instance := pubsub.SplitInstanceQueue(s.Queue)
		if i < p.opts.MaxInstanceQueueSeries {
			out = append(out, queueSeries{queue: queue, instance: instance, values: values(s)})
			continue
		}
		o := other[queue]
		if o == nil {
			o = &queueSeries{queue: queue, instance: OtherInstances}
			other[queue] = o
		}
		v := values(s)
		for g := range numQueueGauges {
			if g == gaugeOldestAge || g == gaugePaused {
				o.values[g] = max(o.values[g], v[g])
			} else {
				o.values[g] += v[g]
			}
		}
	}
	for _, q := range slices.Sorted(maps.Keys(other)) {
		out = append(out, *other[q])
	}
	return out
}

// setInstances sets quantumflow_instances from snap: a series per state of
// each of the topology's services (0 when none is in the state, so that a
// rule can watch for no live instance) and of any other registered
// service. Called with p.mu held.
func (p *Poller) setInstances(snap Snapshot) {
	if snap.Instances == nil {
		return
	}
	m, b := p.opts.Metrics, p.opts.Metrics.opts.Backend
	services := map[string]bool{}
	for _, s := range topology.Services() {
		services[s] = true
	}
	for s := range snap.Instances {
		services[s] = true
	}
	for s := range services {
		for _, state := range pubsub.InstanceStates() {
			m.instances.WithLabelValues(s, state, b).Set(float64(snap.Instances[s][state]))
		}
	}
	// A service whose instances were all removed stops being exported.
	for s := range p.services {
		if !services[s] {
			for _, state := range pubsub.InstanceStates() {
				m.instances.DeleteLabelValues(s, state, b)
			}
		}
	}
	p.services = services
}

// boolGauge is a gauge's value of a yes or no: 1 or 0.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
