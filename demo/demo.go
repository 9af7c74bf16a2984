// Package demo runs the whole QuantumFlow topology in one process —
// CentralCloud and several Singularity instances, each with its own router
// and its own connection to a shared backend — drives the example handlers
// of examples/handlers through all six queues, and reports by message id
// what happened to every message: published, consumed, retried,
// dead-lettered, still pending, lost. `quantumflow demo` is a few lines
// over Run.
//
// What runs:
//
//   - each instance proposes changes; CentralCloud votes and answers every
//     proposal on consensus_results_queue (consensus_approved or
//     consensus_rejected);
//   - instances report execution metrics; a high error rate makes
//     CentralCloud send a high-priority rollback trigger;
//   - instances report patterns; unsafe ones make CentralCloud send a
//     safety profile update;
//   - some messages fail on purpose: flaky ones fail once and succeed on
//     retry, poison proposals fail every attempt and end as dead letters,
//     a malformed pattern is dead-lettered at once.
//
// The backend is an embedded NATS JetStream server in a temporary
// directory, nothing to install; Options.DataDir keeps its data, so that
// messages an interrupted run left are picked up by the next one (counted
// as recovered). Options.URL runs the demo on another backend instead:
// mem:// and nats:// are registered by this package, postgres:// needs
// backends/postgres imported.
//
// Lost is counted from the backend's own listing after every router has
// stopped, not from telemetry alone, and must be 0: Run returns an error
// otherwise.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"

	// The demo's own backends: mem for Options.URL = "mem://...", nats
	// for the embedded server.
	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
)

// ErrInvalidOptions is wrapped by the errors Run returns for Options it
// refuses, before anything runs.
var ErrInvalidOptions = errors.New("demo: invalid options")

// Defaults of Options.
const (
	DefaultInstances     = 3
	DefaultRounds        = 20
	DefaultRetryDelay    = 50 * time.Millisecond
	DefaultTimeout       = 45 * time.Second
	DefaultProgressEvery = 250 * time.Millisecond
)

// Options configure Run. The zero value runs three Singularity instances
// for 20 rounds each on an embedded NATS JetStream server.
type Options struct {
	// URL is the backend every service of the run opens. Defaults to an
	// embedded NATS JetStream server started for the run and stopped after.
	URL string
	// DataDir keeps the embedded server's data in this directory, so that
	// the next run on it delivers what this one left. Defaults to a
	// temporary directory removed at the end. Only without URL.
	DataDir string
	// Instances is how many Singularity instances run. Defaults to 3.
	Instances int
	// Rounds is how many rounds of work each instance does: a proposal,
	// metrics and, every other round, a pattern. Defaults to 20.
	Rounds int
	// Interval is the pause between an instance's rounds; zero means none.
	Interval time.Duration
	// RetryDelay is the delay before a failed message's first retry; it
	// doubles each retry. Nil means 50ms, so that the demo finishes in
	// seconds; zero retries at once.
	RetryDelay *time.Duration
	// MaxRetries is how many retries a failing message gets before it is
	// dead-lettered. Nil means 3 (topology.DefaultMaxRetries); zero
	// dead-letters a message at its first failure.
	MaxRetries *int
	// Namespace is the namespace the run opens a backend given by URL in
	// (pubsub.WithNamespace), apart from the backend's own queues.
	// Defaults to "qfdemo_" and a random suffix. The embedded server is the
	// run's own: no namespace there.
	Namespace string
	// Keep keeps the namespace at the end; otherwise it is removed
	// (with DataDir it is always kept).
	Keep bool
	// Timeout bounds the wait for every message to settle. Defaults to 45s.
	Timeout time.Duration
	// ProgressEvery is how often a progress line is written. Defaults to
	// 250ms.
	ProgressEvery time.Duration
	// Config is where each service's configuration (worker counts) comes
	// from: a file, the environment, a profile. Run sets its Service and
	// the DatabaseURL, MaxRetries and RetryDelay of its Overrides. The zero
	// value is the seed's configuration read with the process environment.
	Config topology.LoadOptions
	// Logger receives the logs of the routers and the embedded server. Nil
	// discards them: the demo's failures are on purpose and reported as
	// progress.
	Logger *slog.Logger
}

// withDefaults returns o with its defaults filled in, or what is wrong
// with it.
func (o Options) withDefaults() (Options, error) {
	var problems []string
	check := func(bad bool, format string, args ...any) {
		if bad {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	check(o.Instances < 0, "Instances must not be negative, got %d", o.Instances)
	check(o.Rounds < 0, "Rounds must not be negative, got %d", o.Rounds)
	check(o.Interval < 0, "Interval must not be negative, got %s", o.Interval)
	check(o.Timeout < 0, "Timeout must not be negative, got %s", o.Timeout)
	check(o.ProgressEvery < 0, "ProgressEvery must not be negative, got %s", o.ProgressEvery)
	check(o.RetryDelay != nil && *o.RetryDelay < 0, "RetryDelay must not be negative")
	check(o.MaxRetries != nil && *o.MaxRetries < 0, "MaxRetries must not be negative")
	check(o.DataDir != "" && o.URL != "", "DataDir is for the embedded NATS server; it cannot be combined with URL")
	if len(problems) > 0 {
		return o, fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
	}
	if o.Instances == 0 {
		o.Instances = DefaultInstances
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	if o.RetryDelay == nil {
		d := DefaultRetryDelay
		o.RetryDelay = &d
	}
	if o.MaxRetries == nil {
		n := topology.DefaultMaxRetries
		o.MaxRetries = &n
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Namespace == "" && o.URL != "" {
		o.Namespace = "qfdemo_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Summary is what a run did, queue by queue.
type Summary struct {
	// Backend is the backend's URL, secrets redacted.
	Backend string `json:"backend"`
	// Embedded is whether the backend was the embedded NATS server.
	Embedded bool `json:"embedded"`
	// Durable is whether the backend keeps messages across restarts.
	Durable bool `json:"durable"`
	// Namespace is the namespace the run used; Kept says whether it is
	// still there.
	Namespace string `json:"namespace"`
	Kept      bool   `json:"kept"`
	// DataDir is Options.DataDir.
	DataDir    string `json:"data_dir,omitempty"`
	Instances  int    `json:"instances"`
	Rounds     int    `json:"rounds"`
	DurationMS int64  `json:"duration_ms"`
	// Settled is whether every message was consumed or dead-lettered and
	// the backend was left idle; false after an interrupt or a timeout.
	Settled bool `json:"settled"`
	// Queues has a row per queue, the six of the topology in its order.
	Queues []QueueSummary `json:"queues"`
	// Total sums Queues; its Queue is "total".
	Total QueueSummary `json:"total"`
	// Lost is Total.Lost. It must be 0.
	Lost int `json:"lost"`
	// Events counts each of the seed's 14 telemetry events by name.
	Events map[string]int64 `json:"events"`
	// Routing says, per Singularity instance, what CentralCloud's answers
	// reached it.
	Routing []InstanceRouting `json:"routing"`
	// Misrouted sums the messages that reached an instance they were not
	// for. It must be 0.
	Misrouted int64 `json:"misrouted"`
	// Error is the error Run returned with this summary, secrets
	// redacted.
	Error string `json:"error,omitempty"`
}

// QueueSummary is one row of the summary.
type QueueSummary struct {
	Queue string `json:"queue"`
	// Published counts messages published during the run.
	Published int `json:"published"`
	// Consumed counts those handled successfully (each once, however often
	// it was delivered).
	Consumed int `json:"consumed"`
	// Retried counts retries scheduled after failed attempts.
	Retried int `json:"retried"`
	// DeadLettered counts those in the backend's dead-letter queue.
	DeadLettered int `json:"dead_lettered"`
	// Pending counts those still in the queue, listed by id (interrupted
	// or timed-out run).
	Pending int `json:"pending"`
	// InFlight counts those the backend still holds as delivered and not
	// settled after every router stopped (their ids cannot be listed; they
	// come back when their lease runs out). Only an unsettled run has any:
	// a settled run ends with the backend idle.
	InFlight int `json:"in_flight"`
	// Lost is Published - Consumed - DeadLettered - Pending - InFlight,
	// by message id. It must be 0.
	Lost int `json:"lost"`
	// Redelivered counts extra successful deliveries of messages already
	// consumed (delivery is at least once).
	Redelivered int `json:"redelivered"`
	// LostIDs are up to 10 ids among which the lost messages are (when
	// some are held in flight, which ids those are is unknown).
	LostIDs []string `json:"lost_ids,omitempty"`
	// Recovered counts messages an earlier run published that this run
	// consumed or dead-lettered (they survived a restart of the demo).
	Recovered int `json:"recovered"`
}

// InstanceRouting is what reached one Singularity instance.
type InstanceRouting struct {
	Instance string `json:"instance"`
	// Results counts consensus results for its own proposals,
	// ResultsForOthers those for another instance's (must be 0).
	Results          int64 `json:"results"`
	ResultsForOthers int64 `json:"results_for_others"`
	// Rollbacks counts rollback triggers for it (or for all),
	// RollbacksForOthers those naming another instance (must be 0).
	Rollbacks          int64 `json:"rollbacks"`
	RollbacksForOthers int64 `json:"rollbacks_for_others"`
	// ProfilesReceived counts the distinct safety profiles it received;
	// it must equal ProfilesPublished.
	ProfilesReceived  int `json:"profiles_received"`
	ProfilesPublished int `json:"profiles_published"`
}

// node is one service instance: its own backend connection and router.
type node struct {
	name    string
	backend *pubsub.Backend
	router  *router.Router
	done    chan error
}

// routing says what reached each instance.
func routing(instances []*handlers.Singularity, track *tracker) []InstanceRouting {
	profiles := track.received(topology.SafetyProfilesQueue)
	published := track.publishedOnce(topology.SafetyProfilesQueue)
	out := make([]InstanceRouting, len(instances))
	for i, s := range instances {
		others := s.ResultsForOthers.Load()
		out[i] = InstanceRouting{
			Instance: s.Instance, Results: s.Approved.Load() + s.Rejected.Load() - others, ResultsForOthers: others,
			Rollbacks: s.Rollbacks.Load() - s.RollbacksForOthers.Load(), RollbacksForOthers: s.RollbacksForOthers.Load(),
			ProfilesReceived: profiles[s.Instance], ProfilesPublished: published,
		}
	}
	return out
}

// topologyQueues lists the queues of the topology the backend has: the
// six, and the instance queues of the addressed and broadcast ones.
func topologyQueues(ctx context.Context, b *pubsub.Backend) ([]string, error) {
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return nil, err
	}
	names := topology.QueueNames()
	var out []string
	for _, qi := range infos {
		if q, _ := pubsub.SplitInstanceQueue(qi.Name); slices.Contains(names, q) {
			out = append(out, qi.Name)
		}
	}
	return out, nil
}

// backendIdle reports whether no queue of the topology holds a message
// (pending, in flight or waiting for a retry).
func backendIdle(ctx context.Context, b *pubsub.Backend) bool {
	queues, err := topologyQueues(ctx, b)
	if err != nil {
		return false
	}
	for _, q := range queues {
		st, err := b.Stats(ctx, q)
		if err != nil || st.Pending+st.InFlight+st.Scheduled > 0 {
			return false
		}
	}
	return true
}

// waitInFlight waits, up to limit, until the backend holds no message as
// in flight: the routers have stopped, and a message a worker had taken
// may take a moment to be given back.
func waitInFlight(ctx context.Context, b *pubsub.Backend, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		var n int64
		queues, _ := topologyQueues(ctx, b)
		for _, q := range queues {
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

// backendIDs lists, per queue of the topology, the copies (copyKey) still
// pending and dead-lettered, and how many messages the backend still holds
// as in flight (delivered, neither acked nor given back; their ids cannot
// be listed).
func backendIDs(ctx context.Context, b *pubsub.Backend) (pending, dead map[string]map[string]struct{}, inFlight map[string]int, err error) {
	const limit = 100_000
	pending = map[string]map[string]struct{}{}
	dead = map[string]map[string]struct{}{}
	inFlight = map[string]int{}
	for _, q := range topology.QueueNames() {
		pending[q] = map[string]struct{}{}
		dead[q] = map[string]struct{}{}
	}
	queues, err := topologyQueues(ctx, b)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, name := range queues {
		q, instance := pubsub.SplitInstanceQueue(name)
		msgs, err := b.ListPending(ctx, name, limit)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("pending of queue %s: %w", name, err)
		}
		for _, m := range msgs {
			pending[q][copyKey(m.ID, instance)] = struct{}{}
		}
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: name, Limit: limit})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("dead letters of queue %s: %w", name, err)
		}
		for _, d := range dls {
			dead[q][copyKey(d.ID, instance)] = struct{}{}
		}
		st, err := b.Stats(ctx, name)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("stats of queue %s: %w", name, err)
		}
		inFlight[q] += int(st.InFlight)
	}
	return pending, dead, inFlight, nil
}
