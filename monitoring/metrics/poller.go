package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// DefaultDLQAlertThreshold is the seed's production alert: more than 100
// dead letters.
const DefaultDLQAlertThreshold = 100

// DefaultPollInterval is how often a Poller reads the backend's stats.
const DefaultPollInterval = 10 * time.Second

// PollerOptions configure NewPoller.
type PollerOptions struct {
	// Admin is the backend whose queues are polled. Required.
	Admin pubsub.Admin
	// Metrics receives the gauges. Required.
	Metrics *Metrics
	// Interval between polls. Defaults to DefaultPollInterval.
	Interval time.Duration
	// DLQAlertThreshold is the number of dead letters (all queues) above
	// which the backend is degraded: the alert gauge goes to 1 and a
	// warning is logged. Defaults to DefaultDLQAlertThreshold.
	DLQAlertThreshold int
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
}

// Poller refreshes the per-queue gauges from Admin.Stats.
type Poller struct {
	opts PollerOptions
	log  *slog.Logger

	mu       sync.Mutex
	known    map[string]bool
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := opts.Metrics.opts.Backend
	opts.Metrics.threshold.WithLabelValues(b).Set(float64(opts.DLQAlertThreshold))
	return &Poller{opts: opts, log: log, known: map[string]bool{}}, nil
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

// Poll reads every queue's stats once and updates the gauges.
func (p *Poller) Poll(ctx context.Context) (Snapshot, error) {
	m := p.opts.Metrics
	b := m.opts.Backend
	snap, err := p.read(ctx)
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

	seen := map[string]bool{}
	for _, s := range snap.Queues {
		seen[s.Queue] = true
		m.pending.WithLabelValues(s.Queue, b).Set(float64(s.Pending))
		m.inFlight.WithLabelValues(s.Queue, b).Set(float64(s.InFlight))
		m.scheduled.WithLabelValues(s.Queue, b).Set(float64(s.Scheduled))
		m.queueDead.WithLabelValues(s.Queue, b).Set(float64(s.DeadLetters))
		m.oldestAge.WithLabelValues(s.Queue, b).Set(s.OldestPendingAge.Seconds())
	}
	m.deadTotal.WithLabelValues(b).Set(float64(snap.DeadLetters))
	alert := 0.0
	if snap.Degraded {
		alert = 1
	}
	m.alert.WithLabelValues(b).Set(alert)

	p.mu.Lock()
	// A queue that disappeared (a purged mem backend, a dropped stream)
	// must not keep exporting its last depth.
	for q := range p.known {
		if !seen[q] {
			for _, g := range []interface{ DeleteLabelValues(...string) bool }{m.pending, m.inFlight, m.scheduled, m.queueDead, m.oldestAge} {
				g.DeleteLabelValues(q, b)
			}
		}
	}
	p.known = seen
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

func (p *Poller) read(ctx context.Context) (Snapshot, error) {
	queues, err := p.opts.Admin.ListQueues(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("list queues: %w", err)
	}
	snap := Snapshot{At: time.Now(), Threshold: p.opts.DLQAlertThreshold}
	for _, q := range queues {
		s, err := p.opts.Admin.Stats(ctx, q.Name)
		if errors.Is(err, pubsub.ErrQueueNotFound) {
			continue // removed between the listing and now
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("stats %s: %w", q.Name, err)
		}
		if s.Queue == "" {
			s.Queue = q.Name
		}
		snap.Queues = append(snap.Queues, s)
		snap.DeadLetters += s.DeadLetters
	}
	snap.Degraded = snap.DeadLetters > int64(snap.Threshold)
	return snap, nil
}
