// Package bench is QuantumFlow's benchmark harness. It measures the
// backends (mem, postgres, nats) through the public API only — pubsub.Open,
// then Publisher().Publish and Subscriber().Subscribe with an ack, or the
// router for the topology scenarios — and, in the same run, baselines
// written directly against the libraries underneath: raw pgx on a table
// shaped like the backend's, stock watermill-sql (as shipped; and, for
// consuming, its queue schema with DeleteOnAck), Watermill's GoChannel and
// raw nats.go jetstream (also publishing with a Nats-Msg-Id per message,
// the duplicate check the NATS backend's publishes pay). Every backend
// figure is given with its ratio to its baseline, so the performance
// targets of the backend issues can be read off one run on one machine.
//
// The harness starts the servers it needs (a throwaway PostgreSQL cluster
// with fsync on, embedded NATS servers with and without SyncAlways) and
// stops them. Run it with `go run ./cmd/quantumflow-bench`; Quick runs
// every scenario in a smoke-test size.
//
// Scenarios:
//   - publish: one message per call, 1, 8 and 64 concurrent publishers
//     (1 publisher: the subjects on one server take turns, see
//     interleaved);
//   - publish_batch: 100 messages per call, 4 concurrent publishers;
//   - consume: a preloaded backlog drained by 1, 4 and 16 workers (no-op
//     handler, ack);
//   - typed_consume: the consume with 4 workers and router.Handle's typed
//     decoding and validation of each payload, against the untyped no-op
//     handler on the same backend;
//   - latency: end to end at fixed rates (200 and 2000 msg/s), timed from
//     each message's intended send time, so a stall cannot hide (no
//     coordinated omission);
//   - roundtrip: the topology's proposal → CentralCloud handler →
//     consensus result back at the instance, through the router;
//   - addressed: the round trip with 25 Singularity instances, each
//     consensus result addressed back to its proposer (a result reaching
//     another instance is a misroute and fails the measurement), against
//     the round trip with one instance and consensus_results_queue as a
//     work queue (issue 11's target: at most 1.3× of it);
//   - broadcast: safety profiles fanned out to 25 instances, timed until
//     the last instance has its copy; every copy must arrive;
//   - mixed: the whole topology at the seed's small, medium and large
//     profiles;
//   - instances: the mixed run's large profile with 25 to 200 Singularity
//     instances and CentralCloud in process on one backend (PostgreSQL,
//     NATS): delivered/offered and the connections the server sees;
//   - vacuum: a 4-worker consume of a backlog kept full by publishing,
//     without and then during a transaction held open for a minute on the
//     same database (PostgreSQL), with claim times and the messages
//     table's dead tuples after the hold;
//   - backlog: the consume rate with 10k and with 1M messages pending;
//   - inflight: claim times with 10k slow messages held (PostgreSQL),
//     before and after their first lease extension parks them, and the
//     reaper's pass on a small and on a 1M-row table;
//   - steady: publish and consume together at half the measured maximum
//     for 10 minutes on PostgreSQL and NATS, the first minute against the
//     last (latency, deliveries, storage size).
//
// Between the scenarios of a full run the servers are cleaned (databases
// dropped, a checkpoint, fresh NATS servers), so that what one scenario
// wrote is not flushed to disk in the middle of the next.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/quantumflow/quantumflow/topology"
)

// Scenario names.
const (
	ScenarioPublish      = "publish"
	ScenarioPublishBatch = "publish_batch"
	ScenarioConsume      = "consume"
	ScenarioTypedConsume = "typed_consume"
	ScenarioLatency      = "latency"
	ScenarioRoundTrip    = "roundtrip"
	ScenarioAddressed    = "addressed"
	ScenarioBroadcast    = "broadcast"
	ScenarioBacklog      = "backlog"
	ScenarioMixed        = "mixed"
	ScenarioInstances    = "instances"
	ScenarioPublishDedup = "publish_dedup"
	ScenarioSteady       = "steady"
	ScenarioVacuum       = "vacuum"
	ScenarioInFlight     = "inflight"
)

// Scenarios returns every scenario name, in the order they run.
func Scenarios() []string {
	return []string{ScenarioPublish, ScenarioPublishBatch, ScenarioPublishDedup, ScenarioConsume, ScenarioTypedConsume, ScenarioLatency, ScenarioRoundTrip, ScenarioAddressed, ScenarioBroadcast, ScenarioMixed, ScenarioInstances, ScenarioVacuum, ScenarioBacklog, ScenarioInFlight, ScenarioSteady}
}

// Subjects returns every subject name: backends first, then baselines.
func Subjects() []string {
	out := make([]string, len(subjectDefs))
	for i, d := range subjectDefs {
		out[i] = d.Name
	}
	return out
}

// Config configures a run.
type Config struct {
	// Quick runs every scenario at smoke-test size (well under a minute).
	Quick bool
	// Scenarios restricts the run to these scenarios; empty means all.
	Scenarios []string
	// Subjects restricts the run to these subjects; empty means all. A
	// backend's ratio needs its baseline selected too.
	Subjects []string
	// Progress receives one line per measurement while the run goes on.
	// Nil discards.
	Progress io.Writer
	// Logger receives the servers' and backends' logs. Nil discards.
	Logger *slog.Logger
	// Command is the command line that produced the run, recorded in the
	// report so that it can be regenerated.
	Command string
	// NATSParams are more URL parameters for the NATS backends (nats,
	// nats_sync), as a URL query: consumer_storage=memory, for one.
	NATSParams string
}

// Report is the outcome of a run.
type Report struct {
	// Mode is "quick" or "full".
	Mode    string    `json:"mode"`
	Command string    `json:"command,omitempty"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Machine Machine   `json:"machine"`
	// Sizes are the run's scale: preload counts, durations, rates.
	Sizes    Sizes         `json:"sizes"`
	Subjects []SubjectInfo `json:"subjects"`
	Results  []*Result     `json:"results"`
	// Targets are the performance targets of the PostgreSQL and NATS
	// issues and of delivery to instances (issue 11), checked against
	// Results.
	Targets []Target `json:"targets"`
}

// Params are what a measurement varies.
type Params struct {
	PayloadBytes int `json:"payload_bytes"`
	// Publishers is the number of concurrent publishing goroutines.
	Publishers int `json:"publishers,omitempty"`
	// Batch is the number of messages per publish call.
	Batch int `json:"batch,omitempty"`
	// Workers is the number of concurrent consumers.
	Workers int `json:"workers,omitempty"`
	// Rate is the offered load in messages per second.
	Rate float64 `json:"rate,omitempty"`
	// Pending is the backlog a consume measurement starts from.
	Pending int `json:"pending,omitempty"`
	// Profile is the scaling profile of a mixed run.
	Profile string `json:"profile,omitempty"`
	// Instances is the number of Singularity instances of a mixed,
	// addressed or broadcast run.
	Instances int `json:"instances,omitempty"`
	// Delivery is consensus_results_queue's delivery in an addressed run:
	// "addressed" (the seed's) or "work" (the round trip as it was before
	// addressing, the baseline).
	Delivery string `json:"delivery,omitempty"`
	// Handler is the handler of a typed consume run: HandlerTyped or
	// HandlerUntyped (the baseline).
	Handler string `json:"handler,omitempty"`
	// Dedup gives every message published a dedup key of its own (issue
	// 12): the publish_dedup scenario compares it with the same publish
	// without keys, on the same backend.
	Dedup bool `json:"dedup,omitempty"`
}

func (p Params) key() string {
	return fmt.Sprintf("%d/%d/%d/%d/%g/%d/%s/%d/%s/%s/%t", p.PayloadBytes, p.Publishers, p.Batch, p.Workers, p.Rate, p.Pending, p.Profile, p.Instances, p.Delivery, p.Handler, p.Dedup)
}

// Result is one measurement of one subject.
type Result struct {
	Scenario   string `json:"scenario"`
	Subject    string `json:"subject"`
	Kind       string `json:"kind"`
	Durability string `json:"durability"`
	// Case names the case of the scenario the result is listed under
	// (e.g. "256B, 8 publishers"); CaseOrder orders the cases.
	Case      string `json:"case"`
	CaseOrder int    `json:"case_order"`
	Params
	// Messages is how many messages the figure is based on.
	Messages int64   `json:"messages"`
	Seconds  float64 `json:"seconds"`
	// Throughput is messages per second (published, consumed or delivered).
	Throughput float64 `json:"throughput_msgs_per_s,omitempty"`
	// FirstMessageMs is, in a backlog run, the median time from starting
	// the consumers to the first message they received.
	FirstMessageMs float64 `json:"first_message_ms,omitempty"`
	// Latency is the end-to-end (or round-trip) latency distribution.
	Latency *Latency `json:"latency,omitempty"`
	// Missing counts messages sent but not received before the end of the
	// measurement; they count in Latency with the time they had waited.
	Missing int64 `json:"missing,omitempty"`
	// Duplicates counts messages received more than once (in a broadcast
	// run: copies an instance received more than once).
	Duplicates int64 `json:"duplicates,omitempty"`
	// Misrouted counts consensus results received by an instance other
	// than the one whose proposal they answer (addressed run). Any fails
	// the measurement.
	Misrouted int64 `json:"misrouted,omitempty"`
	// Copies and CopiesExpected are the broadcast copies delivered (each
	// instance's copy of each message counted once) and those that should
	// have been: one per instance per message. Fewer fails the
	// measurement.
	Copies         int64 `json:"copies,omitempty"`
	CopiesExpected int64 `json:"copies_expected,omitempty"`
	// Queues breaks a mixed run down by queue.
	Queues []QueueFigure `json:"queues,omitempty"`
	// Steady is a steady run's maximum, deliveries and windows.
	Steady *SteadyFigure `json:"steady,omitempty"`
	// Vacuum is a held-back-vacuum run's figures.
	Vacuum *VacuumFigures `json:"vacuum,omitempty"`
	// InFlight is an inflight run's claim and reaper times.
	InFlight *InFlightFigure `json:"inflight,omitempty"`
	// Connections is, in an instances run, the most connections the
	// server held for the run's backend in samples taken while it ran
	// (PostgreSQL: pg_stat_activity rows of its database; NATS: the
	// embedded server's clients); ConnectionBudget is what issue 16
	// allows for its instances (PostgreSQL: 2 per instance plus the
	// backend's pool size; NATS: 1 per instance).
	Connections      int `json:"connections,omitempty"`
	ConnectionBudget int `json:"connection_budget,omitempty"`
	// Searched marks an instances run at a count beyond the planned ones,
	// tried because the count before it held (see searchInstances): its
	// failure ends the search, it does not fail the run.
	Searched bool `json:"searched,omitempty"`
	// CPU says, in an instances run, how busy the machine's CPUs were
	// while the routers ran and this process's part of them.
	CPU string `json:"cpu,omitempty"`
	// Ratios compare the figure with the baselines; the first is the
	// primary baseline.
	Ratios []Ratio `json:"ratios,omitempty"`
	// Note qualifies the figure (e.g. a preload cut short by its time
	// bound).
	Note string `json:"note,omitempty"`
	// Error is set when the measurement failed or could not run.
	Error string `json:"error,omitempty"`
	// Machine is where the figure was measured.
	Machine string `json:"machine"`
}

// QueueFigure is one queue's share of a mixed run.
type QueueFigure struct {
	Queue    string   `json:"queue"`
	Offered  float64  `json:"offered_msgs_per_s"`
	Messages int64    `json:"messages"`
	Missing  int64    `json:"missing,omitempty"`
	Latency  *Latency `json:"latency,omitempty"`
	// RoundTrip is true when the latency runs from the proposal to the
	// consensus result arriving back at the instance.
	RoundTrip bool `json:"round_trip,omitempty"`
}

// Ratio compares a figure with the same figure of a baseline.
type Ratio struct {
	// Baseline is the baseline subject's name.
	Baseline string `json:"baseline"`
	// BaselineParams describes the baseline's measurement where it differs
	// from this one's (e.g. "8 publishers").
	BaselineParams string `json:"baseline_params,omitempty"`
	// Metric is "throughput" (higher is better), "p50"/"p99" (latency:
	// lower is better) or "delivered" (mixed run: messages received over
	// messages sent; Baseline is then "offered load" and BaselineValue the
	// offered msg/s; broadcast run: copies delivered over copies expected,
	// Baseline "expected copies" and BaselineValue their number;
	// held-back-vacuum run: the rate during the hold over the rate
	// without it, Baseline "no hold").
	Metric        string  `json:"metric"`
	BaselineValue float64 `json:"baseline_value"`
	// Value is this figure divided by the baseline's.
	Value float64 `json:"value"`
}

// Run runs the benchmark and returns its report. It returns an error only
// when nothing could be measured or ctx was cancelled; a subject that fails
// reports its error in its results.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			return nil, fmt.Errorf("bench: unknown scenario %q (known: %s)", s, strings.Join(Scenarios(), ", "))
		}
	}
	for _, s := range cfg.Subjects {
		if subjectByName(s) == nil {
			return nil, fmt.Errorf("bench: unknown subject %q (known: %s)", s, strings.Join(Subjects(), ", "))
		}
	}
	sizes := fullSizes
	mode := "full"
	if cfg.Quick {
		sizes, mode = quickSizes, "quick"
	}
	jobs := plan(sizes, cfg)
	if len(jobs) == 0 {
		return nil, errors.New("bench: the selection leaves nothing to measure")
	}

	started := time.Now()
	needPG, needNATS := false, false
	for _, j := range jobs {
		switch j.def.needs {
		case "postgres":
			needPG = true
		case "nats", "nats_sync":
			needNATS = true
		}
	}
	fmt.Fprintf(cfg.Progress, "bench: %s run, %d measurements; starting servers\n", mode, len(jobs))
	e := startEnv(ctx, cfg.Logger, needPG, needNATS)
	defer e.close()
	if e.natsParams = cfg.NATSParams; e.natsParams != "" && needNATS {
		if err := e.checkNATSParams(ctx); err != nil {
			return nil, fmt.Errorf("bench: NATS parameters %q: %w", e.natsParams, err)
		}
	}
	e.reuseDatabases = cfg.Quick

	m := readMachine()
	m.Durability = map[string]string{}
	if needPG {
		if v, s, err := e.postgresInfo(ctx); err == nil {
			m.PostgreSQL, m.PostgreSQLSettings = v, s
			m.Durability["postgres"] = durPostgres
		} else {
			fmt.Fprintf(cfg.Progress, "bench: PostgreSQL unavailable, its subjects are skipped: %v\n", err)
		}
	}
	if needNATS {
		if e.nats != nil {
			m.Durability["nats"] = durNATS
		} else {
			fmt.Fprintf(cfg.Progress, "bench: embedded NATS unavailable, its subjects are skipped: %v\n", e.natsErr)
		}
		if e.natsSync != nil {
			m.Durability["nats_sync"] = durNATSSync
		}
	}
	m.Durability["mem"] = durMemory

	rep := &Report{Mode: mode, Command: cfg.Command, Started: started.UTC(), Machine: m, Sizes: sizes}
	seen := map[string]bool{}
	for _, j := range jobs {
		if !seen[j.def.Name] {
			seen[j.def.Name] = true
		}
	}
	for _, d := range subjectDefs {
		if seen[d.Name] {
			rep.Subjects = append(rep.Subjects, d.SubjectInfo)
		}
	}

	total := 0
	for _, j := range jobs {
		total += len(runOrder(j.scenario, []*job{j}, cfg.Quick))
	}
	r := &runner{cfg: cfg, env: e, sizes: sizes, machine: m.Summary(), total: total, started: started}
	results := r.runAll(ctx, jobs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	jobs = append(jobs, r.searched...)
	computeRatios(jobs, results)
	for _, j := range jobs {
		rep.Results = append(rep.Results, results[j.key()])
	}
	rep.Targets = checkTargets(rep)
	rep.Seconds = time.Since(started).Seconds()
	fmt.Fprintf(cfg.Progress, "bench: done in %s\n", time.Since(started).Round(time.Second))
	return rep, nil
}

// Sizes is the scale of a run.
type Sizes struct {
	// Warmup runs before a publish measurement starts counting.
	Warmup Duration `json:"warmup"`
	// Publish is how long a publish measurement counts.
	Publish Duration `json:"publish"`
	// Preload is the backlog a consume measurement starts from.
	Preload int `json:"preload"`
	// PreloadMax bounds the time spent preloading; a slower subject starts
	// from a smaller backlog (its result says so).
	PreloadMax Duration `json:"preload_max"`
	// ConsumeMax bounds a consume measurement.
	ConsumeMax Duration `json:"consume_max"`
	// Latency is how long messages are sent at each fixed rate.
	Latency Duration `json:"latency"`
	// Drain is how long after the last intended send a latency
	// measurement waits for stragglers.
	Drain Duration `json:"drain"`
	// RoundTripRate is the offered rate of proposals in the round trip.
	RoundTripRate float64 `json:"roundtrip_rate"`
	// RoundTrip is how long proposals are sent.
	RoundTrip Duration `json:"roundtrip"`
	// BacklogSmall and BacklogLarge are the two backlogs compared.
	BacklogSmall int `json:"backlog_small"`
	BacklogLarge int `json:"backlog_large"`
	// BacklogSample is how many messages one sample of the backlog
	// consume rate is timed over (the rate is the median of
	// backlogRepeats samples).
	BacklogSample int `json:"backlog_sample"`
	// BacklogPreloadMax bounds the time spent loading the large backlog.
	BacklogPreloadMax Duration `json:"backlog_preload_max"`
	// Mixed is how long each profile of the mixed run sends.
	Mixed Duration `json:"mixed"`
	// MixedInstances is the number of Singularity instances per profile.
	MixedInstances map[string]int `json:"mixed_instances"`
	// InstanceCounts are the Singularity instance counts of the instances
	// scenario (the mixed run's large profile); InstancesWindow is how
	// long each count sends.
	InstanceCounts  []int    `json:"instance_counts"`
	InstancesWindow Duration `json:"instances_window"`
	// InstanceCeiling bounds the search beyond InstanceCounts (see
	// searchInstances; 0: no search).
	InstanceCeiling int `json:"instance_ceiling,omitempty"`
	// Instances is the number of Singularity instances of the addressed
	// round trip and of the broadcast fan-out.
	Instances int `json:"instances"`
	// BroadcastRate is the rate CentralCloud publishes safety profiles at
	// in the broadcast fan-out.
	BroadcastRate float64 `json:"broadcast_rate"`
	// Broadcast is how long safety profiles are published.
	Broadcast Duration `json:"broadcast"`
	// SteadyProbe is how long the steady scenario measures its maximum
	// (publishers and consumers flat out together).
	SteadyProbe Duration `json:"steady_probe"`
	// Steady is how long the steady scenario offers half that maximum;
	// SteadyWindow is the window its first and last figures are taken
	// over (issue 16: the first and the last minute of 10).
	Steady       Duration `json:"steady"`
	SteadyWindow Duration `json:"steady_window"`
	// VacuumBacklog is the backlog of the held-back-vacuum run, kept at
	// that size by publishing while it runs (loaded within
	// BacklogPreloadMax); VacuumHold is how long it holds a transaction
	// open, and measures the rate without one for as long before;
	// VacuumRecover is how long after the hold it waits for the dead
	// tuples to come back under their bound.
	VacuumBacklog int      `json:"vacuum_backlog"`
	VacuumHold    Duration `json:"vacuum_hold"`
	VacuumRecover Duration `json:"vacuum_recover"`
	// InFlight is how many slow messages the inflight run holds;
	// ClaimSamples how many claims it times in each of its phases;
	// InFlightTable the backlog it loads for the reaper's large table.
	InFlight      int `json:"inflight"`
	ClaimSamples  int `json:"claim_samples"`
	InFlightTable int `json:"inflight_table"`
}

// Duration is a time.Duration that reads well in JSON.
type Duration time.Duration

// MarshalText writes the duration as Go writes it ("1.5s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

var instancesPerProfile = map[string]int{"small": 3, "medium": 10, "large": 25}

var fullSizes = Sizes{
	Warmup:            Duration(300 * time.Millisecond),
	Publish:           Duration(2 * time.Second),
	Preload:           100_000,
	PreloadMax:        Duration(8 * time.Second),
	ConsumeMax:        Duration(4 * time.Second),
	Latency:           Duration(5 * time.Second),
	Drain:             Duration(3 * time.Second),
	RoundTripRate:     100,
	RoundTrip:         Duration(5 * time.Second),
	BacklogSmall:      10_000,
	BacklogLarge:      1_000_000,
	BacklogSample:     5_000,
	BacklogPreloadMax: Duration(75 * time.Second),
	Mixed:             Duration(6 * time.Second),
	MixedInstances:    instancesPerProfile,
	InstanceCounts:    []int{25, 50, 100, 200},
	InstancesWindow:   Duration(10 * time.Second),
	InstanceCeiling:   1600,
	Instances:         25,
	BroadcastRate:     20,
	Broadcast:         Duration(5 * time.Second),
	SteadyProbe:       Duration(10 * time.Second),
	Steady:            Duration(10 * time.Minute),
	SteadyWindow:      Duration(time.Minute),
	VacuumBacklog:     200_000,
	VacuumHold:        Duration(time.Minute),
	VacuumRecover:     Duration(time.Minute),
	InFlight:          10_000,
	ClaimSamples:      1_000,
	InFlightTable:     1_000_000,
}

var quickSizes = Sizes{
	Warmup:            Duration(30 * time.Millisecond),
	Publish:           Duration(150 * time.Millisecond),
	Preload:           1_000,
	PreloadMax:        Duration(1 * time.Second),
	ConsumeMax:        Duration(2 * time.Second),
	Latency:           Duration(300 * time.Millisecond),
	Drain:             Duration(10 * time.Second), // a wait for stragglers, not a fixed pause: a loaded CI machine once needed more than 2.5s
	RoundTripRate:     100,
	RoundTrip:         Duration(300 * time.Millisecond),
	BacklogSmall:      500,
	BacklogLarge:      5_000,
	BacklogSample:     250,
	BacklogPreloadMax: Duration(5 * time.Second),
	Mixed:             Duration(400 * time.Millisecond),
	MixedInstances:    instancesPerProfile,
	InstanceCounts:    []int{5, 10},
	InstancesWindow:   Duration(time.Second),
	InstanceCeiling:   20,
	Instances:         5,
	BroadcastRate:     20,
	Broadcast:         Duration(500 * time.Millisecond),
	SteadyProbe:       Duration(3 * time.Second),
	// The quick size: 1 minute. Windows of 10 s, so that the
	// first and the last are still windows compared, not the whole run.
	Steady:       Duration(time.Minute),
	SteadyWindow: Duration(10 * time.Second),
	// A few seconds: autovacuum may not come round in them.
	VacuumBacklog: 5_000,
	VacuumHold:    Duration(3 * time.Second),
	VacuumRecover: Duration(3 * time.Second),
	InFlight:      500,
	ClaimSamples:  100,
	InFlightTable: 5_000,
}

// job is one measurement to make.
type job struct {
	scenario string
	def      *subjectDef
	params   Params
	// baselines are the measurements this one is compared with, primary
	// first.
	baselines []*job
	// caseLabel and caseOrder name the case of the scenario the job was
	// first planned for (a baseline serving several cases is listed with
	// the first), for grouping in tables and the chart.
	caseLabel string
	caseOrder int
}

func (j *job) key() string { return j.scenario + "|" + j.def.Name + "|" + j.params.key() }

func (j *job) String() string {
	p := j.params
	var parts []string
	if p.PayloadBytes > 0 {
		parts = append(parts, fmtBytes(p.PayloadBytes))
	}
	if p.Publishers > 0 {
		parts = append(parts, fmt.Sprintf("publishers=%d", p.Publishers))
	}
	if p.Batch > 1 {
		parts = append(parts, fmt.Sprintf("batch=%d", p.Batch))
	}
	if p.Workers > 0 {
		parts = append(parts, fmt.Sprintf("workers=%d", p.Workers))
	}
	if p.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate=%g/s", p.Rate))
	}
	if p.Pending > 0 {
		parts = append(parts, fmt.Sprintf("pending=%d", p.Pending))
	}
	if p.Profile != "" {
		parts = append(parts, fmt.Sprintf("profile=%s (%d instances)", p.Profile, p.Instances))
	} else if p.Instances > 0 {
		parts = append(parts, fmt.Sprintf("instances=%d", p.Instances))
	}
	if p.Delivery != "" {
		parts = append(parts, "delivery="+p.Delivery)
	}
	if p.Handler != "" {
		parts = append(parts, "handler="+p.Handler)
	}
	if p.Dedup {
		parts = append(parts, "dedup_keys")
	}
	return fmt.Sprintf("%s %s %s", j.scenario, j.def.Name, strings.Join(parts, " "))
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func fmtBytes(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// plan lists the measurements of a run: every selected backend in every
// selected scenario, each with the baseline measurements it is compared
// with, which run in the same process on the same servers. Jobs run
// scenario by scenario, and within one scenario subject by subject, so a
// subject is opened once per scenario.
func plan(sz Sizes, cfg Config) []*job {
	pl := &planner{cfg: cfg, sz: sz, index: map[string]*job{}}
	pl.publishJobs()
	pl.consumeJobs()
	pl.latencyJobs()
	pl.instanceJobs()
	pl.roundTwoJobs()
	order := map[string]int{}
	for i, s := range Scenarios() {
		order[s] = i
	}
	subj := map[string]int{}
	for i, d := range subjectDefs {
		subj[d.Name] = i
	}
	slices.SortStableFunc(pl.jobs, func(a, b *job) int {
		if d := order[a.scenario] - order[b.scenario]; d != 0 {
			return d
		}
		return subj[a.def.Name] - subj[b.def.Name]
	})
	return pl.jobs
}

// Payload sizes of the plan's cases.
const small, large = 256, 4096

// planner collects a run's jobs, each once, in the order planned.
type planner struct {
	cfg   Config
	sz    Sizes
	jobs  []*job
	index map[string]*job // by job.key
	// curCase and caseN name the case being planned (see job.caseLabel).
	curCase string
	caseN   int
}

// newCase starts the next case: the jobs added from now on belong to it.
func (pl *planner) newCase(format string, args ...any) {
	pl.caseN++
	pl.curCase = fmt.Sprintf(format, args...)
}

// add plans subject in scenario with p, unless the run does not select
// them (nil then), and returns the job; a job planned before with the
// same parameters is returned, not planned twice.
func (pl *planner) add(scenario, subject string, p Params) *job {
	if len(pl.cfg.Scenarios) > 0 && !slices.Contains(pl.cfg.Scenarios, scenario) ||
		len(pl.cfg.Subjects) > 0 && !slices.Contains(pl.cfg.Subjects, subject) {
		return nil
	}
	def := subjectByName(subject)
	if def.maxWorkers > 0 && p.Workers > def.maxWorkers {
		p.Workers = def.maxWorkers
	}
	j := &job{scenario: scenario, def: def, params: p, caseLabel: pl.curCase, caseOrder: pl.caseN}
	if have, ok := pl.index[j.key()]; ok {
		return have
	}
	pl.index[j.key()] = j
	pl.jobs = append(pl.jobs, j)
	return j
}

// link makes bs the baselines of j (those planned, and not j itself).
func link(j *job, bs ...*job) {
	if j == nil {
		return
	}
	for _, b := range bs {
		if b != nil && b != j {
			j.baselines = append(j.baselines, b)
		}
	}
}

// publishJobs plans publish (one message per call), publish_batch (100
// per call, 4 publishers) and publish_dedup.
func (pl *planner) publishJobs() {
	for _, c := range []struct{ size, pubs int }{{small, 1}, {small, 8}, {small, 64}, {large, 8}} {
		pl.newCase("%s, %s", fmtBytes(c.size), plural(c.pubs, "publisher"))
		p := Params{PayloadBytes: c.size, Publishers: c.pubs, Batch: 1}
		// The raw floor for single-row inserts is the commit rate of up
		// to 8 connections (the reference).
		praw := p
		praw.Publishers = min(c.pubs, rawPoolSize)
		pl.publishCase(ScenarioPublish, p, praw)
	}
	for _, size := range []int{small, large} {
		pl.newCase("%s", fmtBytes(size))
		p := Params{PayloadBytes: size, Publishers: 4, Batch: 100}
		pl.publishCase(ScenarioPublishBatch, p, p)
	}
	// publish_dedup (issue 12): every message with a dedup key of its own
	// (none is a duplicate: the cost of the check), against the same
	// publish without keys on the same backend.
	for _, c := range []struct{ pubs, batch int }{{8, 1}, {4, 100}} {
		pl.newCase("%s, %s, %s per call", fmtBytes(small), plural(c.pubs, "publisher"), plural(c.batch, "message"))
		// pgx: the floor, a unique index of the keys and nothing more.
		for _, b := range []string{SubjectMem, SubjectPostgres, SubjectPgx, SubjectNATS, SubjectNATSSync} {
			p := Params{PayloadBytes: small, Publishers: c.pubs, Batch: c.batch}
			plain := pl.add(ScenarioPublishDedup, b, p)
			p.Dedup = true
			link(pl.add(ScenarioPublishDedup, b, p), plain)
		}
	}
}

// publishCase plans one case of a publish scenario: every backend and
// its baselines, raw pgx with praw.
func (pl *planner) publishCase(scenario string, p, praw Params) {
	gc, pg, wm := pl.add(scenario, SubjectGoChannel, p), pl.add(scenario, SubjectPgx, praw), pl.add(scenario, SubjectWatermillSQL, p)
	js, jss := pl.add(scenario, SubjectJetStream, p), pl.add(scenario, SubjectJetStreamSync, p)
	jsm := pl.add(scenario, SubjectJetStreamMsgID, p)
	link(wm, pg)
	link(pl.add(scenario, SubjectMem, p), gc)
	link(pl.add(scenario, SubjectPostgres, p), pg, wm)
	link(pl.add(scenario, SubjectNATS, p), js, jsm)
	link(pl.add(scenario, SubjectNATSSync, p), jss)
}

// consumeJobs plans consume from a preloaded backlog, typed_consume and
// backlog growth.
func (pl *planner) consumeJobs() {
	for _, c := range []struct{ size, workers int }{{small, 1}, {small, 4}, {small, 16}, {large, 4}} {
		pl.newCase("%s, %s", fmtBytes(c.size), plural(c.workers, "worker"))
		p := Params{PayloadBytes: c.size, Workers: c.workers, Pending: pl.sz.Preload}
		// The raw floors run 1 and 4 consumers (the reference).
		praw := p
		praw.Workers = min(c.workers, 4)
		gc, pg, wm := pl.add(ScenarioConsume, SubjectGoChannel, p), pl.add(ScenarioConsume, SubjectPgx, praw), pl.add(ScenarioConsume, SubjectWatermillSQL, p)
		wmq := pl.add(ScenarioConsume, SubjectWatermillSQLQueue, p)
		js, jss := pl.add(ScenarioConsume, SubjectJetStream, praw), pl.add(ScenarioConsume, SubjectJetStreamSync, praw)
		link(wm, pg)
		link(wmq, pg)
		link(pl.add(ScenarioConsume, SubjectMem, p), gc)
		link(pl.add(ScenarioConsume, SubjectPostgres, p), pg, wm, wmq)
		link(pl.add(ScenarioConsume, SubjectPostgresSync, p), pg, wm, wmq)
		link(pl.add(ScenarioConsume, SubjectNATS, p), js)
		link(pl.add(ScenarioConsume, SubjectNATSSync, p), jss)
	}
	// typed consume (issue 12): router.Handle's decoding against the
	// untyped handler, each backend against itself.
	pl.newCase("%s, 4 workers, typed vs untyped handler", fmtBytes(small))
	for _, b := range []string{SubjectMem, SubjectPostgres, SubjectNATS} {
		p := Params{PayloadBytes: small, Workers: 4, Pending: pl.sz.Preload, Handler: HandlerUntyped}
		untyped := pl.add(ScenarioTypedConsume, b, p)
		p.Handler = HandlerTyped
		link(pl.add(ScenarioTypedConsume, b, p), untyped)
	}
	// backlog growth: each backend against itself with the small backlog.
	pl.newCase("%s, 4 workers", fmtBytes(small))
	for _, b := range []string{SubjectMem, SubjectPostgres, SubjectNATS} {
		p := Params{PayloadBytes: small, Workers: 4, Pending: pl.sz.BacklogSmall}
		smaller := pl.add(ScenarioBacklog, b, p)
		p.Pending = pl.sz.BacklogLarge
		link(pl.add(ScenarioBacklog, b, p), smaller)
	}
}

// latencyJobs plans latency at fixed rates and the topology round trip.
func (pl *planner) latencyJobs() {
	for _, rate := range []float64{200, 2000} {
		pl.newCase("%g msg/s", rate)
		pl.latencyCase(ScenarioLatency, Params{PayloadBytes: small, Workers: 4, Rate: rate}, true)
	}
	pl.newCase("%g proposals/s", pl.sz.RoundTripRate)
	pl.latencyCase(ScenarioRoundTrip, Params{PayloadBytes: small, Rate: pl.sz.RoundTripRate}, false)
}

// latencyCase plans one case of a latency scenario: every backend against
// its baseline at the same rate, postgres_sync_acks too with syncAcks.
func (pl *planner) latencyCase(scenario string, p Params, syncAcks bool) {
	gc, wm := pl.add(scenario, SubjectGoChannel, p), pl.add(scenario, SubjectWatermillSQL, p)
	js, jss := pl.add(scenario, SubjectJetStream, p), pl.add(scenario, SubjectJetStreamSync, p)
	link(pl.add(scenario, SubjectMem, p), gc)
	link(pl.add(scenario, SubjectPostgres, p), wm)
	if syncAcks {
		link(pl.add(scenario, SubjectPostgresSync, p), wm)
	}
	link(pl.add(scenario, SubjectNATS, p), js)
	link(pl.add(scenario, SubjectNATSSync, p), jss)
}

// instanceJobs plans the scenarios with many instances: addressed,
// broadcast, mixed and instances.
func (pl *planner) instanceJobs() {
	sz := pl.sz
	// Delivery to instances (issue 11): the round trip with sz.Instances
	// instances and each result addressed to its proposer, against the
	// round trip as it was before addressing (one instance, the results
	// on a work queue) on the same backend; the total proposal rate is the
	// same, so the ratio is what addressing and the instances cost.
	pl.newCase("%g proposals/s", sz.RoundTripRate)
	for _, b := range []string{SubjectMem, SubjectPostgres, SubjectNATS, SubjectNATSSync} {
		p := Params{PayloadBytes: small, Rate: sz.RoundTripRate, Instances: 1, Delivery: string(topology.DeliveryWork)}
		work := pl.add(ScenarioAddressed, b, p)
		p.Instances, p.Delivery = sz.Instances, string(topology.DeliveryAddressed)
		link(pl.add(ScenarioAddressed, b, p), work)
	}
	// Broadcast fan-out: every backend on its own.
	pl.newCase("%g profiles/s, %d instances", sz.BroadcastRate, sz.Instances)
	for _, b := range []string{SubjectMem, SubjectPostgres, SubjectNATS, SubjectNATSSync} {
		pl.add(ScenarioBroadcast, b, Params{PayloadBytes: small, Rate: sz.BroadcastRate, Instances: sz.Instances})
	}
	for _, prof := range []string{"small", "medium", "large"} {
		pl.newCase("%s profile, %d instances", prof, sz.MixedInstances[prof])
		for _, b := range []string{SubjectMem, SubjectPostgres, SubjectNATS} {
			pl.add(ScenarioMixed, b, Params{PayloadBytes: small, Profile: prof, Instances: sz.MixedInstances[prof]})
		}
	}
	// many instances (issue 16): the mixed run's large profile at each
	// instance count, every router of a count in this process on one
	// backend.
	for _, n := range sz.InstanceCounts {
		pl.newCase("%s", instancesCase(n))
		for _, b := range []string{SubjectPostgres, SubjectNATS} {
			pl.add(ScenarioInstances, b, Params{PayloadBytes: small, Profile: "large", Instances: n})
		}
	}
}

// instancesCase is the case label of the instances scenario with n
// instances.
func instancesCase(n int) string {
	return fmt.Sprintf("large profile, %d instances, in process on one backend", n)
}

// roundTwoJobs plans issue 16's own scenarios: steady, vacuum, inflight.
func (pl *planner) roundTwoJobs() {
	sz := pl.sz
	// steady state: each backend on its own, NATS at its default sync
	// (the figures).
	pl.newCase("%s, 4 workers, half the measured maximum for %s (windows of %s)", fmtBytes(small), sz.Steady.D(), sz.SteadyWindow.D())
	for _, b := range []string{SubjectPostgres, SubjectNATS} {
		pl.add(ScenarioSteady, b, Params{PayloadBytes: small, Workers: 4})
	}
	// held-back vacuum: the backend, and the raw SKIP LOCKED loop on the
	// same index for reference (no claim probe: its claims are not the
	// backend's).
	pl.newCase("%s, 4 workers, %d pending, %s hold", fmtBytes(small), sz.VacuumBacklog, sz.VacuumHold.D())
	for _, b := range []string{SubjectPostgres, SubjectPgx} {
		pl.add(ScenarioVacuum, b, Params{PayloadBytes: small, Workers: 4, Pending: sz.VacuumBacklog})
	}
	// slow messages in flight: the PostgreSQL claim and reaper.
	pl.newCase("%s, %d held", fmtBytes(small), sz.InFlight)
	pl.add(ScenarioInFlight, SubjectPostgres, Params{PayloadBytes: small, Pending: sz.InFlight})
}

// runner runs jobs and reports progress.
type runner struct {
	cfg     Config
	env     *env
	sizes   Sizes
	machine string
	total   int
	done    int
	started time.Time
	// toSearch are the largest planned instances jobs of the scenario
	// running, one per backend, to search from once all are measured;
	// searched are the jobs searchInstances added to the plan.
	toSearch []*job
	searched []*job
}

func (r *runner) runAll(ctx context.Context, jobs []*job) map[string]*Result {
	results := map[string]*Result{}
	lone, jobs := splitInterleaved(jobs)
	r.runInterleaved(ctx, lone, results)
	for i := 0; i < len(jobs); {
		if i > 0 && jobs[i].scenario != jobs[i-1].scenario && !r.cfg.Quick {
			r.env.reset(ctx)
		}
		// A group is the jobs of one subject in one scenario.
		k := i + 1
		for k < len(jobs) && jobs[k].scenario == jobs[i].scenario && jobs[k].def == jobs[i].def {
			k++
		}
		r.runGroup(ctx, jobs[i:k], results)
		i = k
		if i == len(jobs) || jobs[i].scenario != jobs[i-1].scenario {
			// After every planned count of every backend: the planned
			// figures are measured as they were without the search.
			for _, last := range r.toSearch {
				r.searchInstances(ctx, last, results)
			}
			r.toSearch = nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return results
}

func (r *runner) runGroup(ctx context.Context, group []*job, results map[string]*Result) {
	def := group[0].def
	scenario := group[0].scenario
	// Consume-type scenarios leave backlogs and dead rows behind; give
	// each of their measurements a fresh subject (a fresh database, the
	// earlier ones dropped) in full mode.
	perJob := !r.cfg.Quick && (scenario == ScenarioConsume || scenario == ScenarioTypedConsume || scenario == ScenarioBacklog)
	// The router scenarios use the topology's fixed queue names and open
	// their own backend each time.
	routed := def.Kind == KindBackend && slices.Contains([]string{ScenarioRoundTrip, ScenarioAddressed, ScenarioBroadcast, ScenarioMixed, ScenarioInstances}, scenario)
	var inst *instance
	var openErr error
	openInst := func() {
		if inst != nil {
			_ = inst.close()
			inst = nil
		}
		if perJob {
			r.env.dropDatabases(ctx)
		}
		inst, openErr = def.open(ctx, r.env)
		if openErr != nil {
			inst = nil
		}
	}
	defer func() {
		if inst != nil {
			_ = inst.close()
		}
	}()
	for n, j := range runOrder(scenario, group, r.cfg.Quick) {
		if ctx.Err() != nil {
			return
		}
		res := r.newResult(j)
		if !routed && (inst == nil && openErr == nil || perJob && n > 0) {
			openInst()
		}
		if scenario == ScenarioInstances && n > 0 && !r.cfg.Quick {
			// Each instance count on fresh servers. The queues of the
			// counts before stay otherwise: at 200 instances NATS then
			// held some 500 streams from 25, 50 and 100 besides the 600
			// of its own, and once stopped answering publishes for 30 s.
			// Nothing is open between routed jobs.
			r.env.reset(ctx)
		}
		var err error
		switch {
		case routed:
			err = r.runRouted(ctx, j, res)
		case openErr != nil:
			err = openErr
		default:
			runtime.GC()
			err = r.measure(ctx, inst, j, res)
		}
		if err != nil {
			res.Error = err.Error()
		}
		r.record(j, res, results)
	}
	if scenario == ScenarioInstances {
		r.toSearch = append(r.toSearch, slices.MaxFunc(group, func(a, b *job) int { return a.params.Instances - b.params.Instances }))
	}
}

// searchInstances goes on from last, the largest instance count planned,
// if it held at delivered/offered 1.00: it doubles the count while every
// count held, up to Sizes.InstanceCeiling, then narrows the gap between
// the largest count held and the smallest that did not (see nextCount),
// each count on fresh servers. So the report gives the largest count this
// machine holds (issue 16), not only whether the planned counts held.
func (r *runner) searchInstances(ctx context.Context, last *job, results map[string]*Result) {
	if !heldAll(results[last.key()]) {
		return
	}
	held, failed := last.params.Instances, 0
	for n := nextCount(held, failed, r.sizes.InstanceCeiling); n > 0 && ctx.Err() == nil; n = nextCount(held, failed, r.sizes.InstanceCeiling) {
		j := &job{scenario: last.scenario, def: last.def, params: last.params, caseOrder: last.caseOrder + 1,
			caseLabel: instancesCase(n) + ", searched"}
		j.params.Instances = n
		r.total++
		if !r.cfg.Quick {
			r.env.reset(ctx)
		}
		res := r.newResult(j)
		res.Searched = true
		if err := r.runRouted(ctx, j, res); err != nil {
			res.Error = err.Error()
		}
		r.record(j, res, results)
		r.searched = append(r.searched, j)
		if heldAll(res) {
			held = n
		} else {
			failed = n
		}
	}
}

// nextCount is the next instance count the search tries, given the
// largest count held so far and the smallest that did not hold (0: none
// yet), or 0 once it is over: twice the count held while none failed, up
// to ceiling; then halfway between the two while they are more than a
// quarter of the count held apart.
func nextCount(held, failed, ceiling int) int {
	switch {
	case failed == 0 && 2*held <= ceiling:
		return 2 * held
	case failed == 0 || failed-held <= held/4:
		return 0
	}
	return (held + failed) / 2
}

// heldAll reports whether an instances run delivered everything offered.
func heldAll(r *Result) bool {
	ratio, ok := deliveredRatio(r)
	return ok && ratio >= 1
}

// newResult returns the result of a measurement of j, not yet made.
func (r *runner) newResult(j *job) *Result {
	return &Result{Scenario: j.scenario, Subject: j.def.Name, Kind: j.def.Kind, Durability: j.def.Durability, Params: j.params,
		Case: j.caseLabel, CaseOrder: j.caseOrder, Machine: r.machine}
}

// record reports a measurement of j and keeps it, merged with an earlier
// one of the same job (mirrored).
func (r *runner) record(j *job, res *Result, results map[string]*Result) {
	r.done++
	r.progress(j, res)
	if first, ok := results[j.key()]; ok {
		res = mergeRuns(first, res)
	}
	results[j.key()] = res
}

// mirrored are the scenarios whose targets compare two figures of the same
// backend (typed against untyped, dedup keys against none). In one
// process the second of two back-to-back runs measured ~25% slower on
// PostgreSQL (the database's state after the first: WAL, checkpoints,
// autovacuum), enough to decide a 0.9× target. So in full mode each of
// their groups runs forward and then backward (A B B A), and each
// figure is the two runs together: every job sits at the same mean
// position.
var mirrored = []string{ScenarioTypedConsume, ScenarioPublishDedup}

// runOrder is the order in which a group's jobs are measured.
func runOrder(scenario string, group []*job, quick bool) []*job {
	if quick || !slices.Contains(mirrored, scenario) {
		return group
	}
	back := slices.Clone(group)
	slices.Reverse(back)
	return append(slices.Clone(group), back...)
}

// mergeRuns combines two runs of one throughput job: their messages over
// their time. A failed run fails the figure.
func mergeRuns(a, b *Result) *Result {
	if a.Error != "" {
		return a
	}
	if b.Error != "" {
		return b
	}
	m := *a
	m.Messages += b.Messages
	m.Seconds += b.Seconds
	if m.Seconds > 0 {
		m.Throughput = float64(m.Messages) / m.Seconds
	}
	notes := []string{"2 runs (A B B A)"}
	for _, n := range []string{a.Note, b.Note} {
		if n != "" && !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	m.Note = strings.Join(notes, "; ")
	return &m
}

func (r *runner) progress(j *job, res *Result) {
	elapsed := time.Since(r.started).Round(time.Second)
	var fig string
	switch {
	case res.Error != "":
		fig = "ERROR: " + res.Error
	case res.Latency != nil:
		fig = fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.1f ms (%d msgs, %d missing)", res.Latency.P50Ms, res.Latency.P99Ms, res.Latency.MaxMs, res.Messages, res.Missing)
	default:
		fig = fmt.Sprintf("%s msg/s (%d msgs in %.2fs)", fmtRate(res.Throughput), res.Messages, res.Seconds)
	}
	if res.CopiesExpected > 0 {
		fig += fmt.Sprintf("; copies %d of %d", res.Copies, res.CopiesExpected)
	}
	if res.ConnectionBudget > 0 {
		fig += fmt.Sprintf("; %d connections (budget %d)", res.Connections, res.ConnectionBudget)
	}
	if res.Note != "" {
		fig += "; " + res.Note
	}
	fmt.Fprintf(r.cfg.Progress, "[%3d/%d %6s] %-60s %s\n", r.done, r.total, elapsed, j.String(), fig)
}

func (r *runner) measure(ctx context.Context, inst *instance, j *job, res *Result) error {
	switch j.scenario {
	case ScenarioPublish, ScenarioPublishBatch, ScenarioPublishDedup:
		return r.publishThroughput(ctx, inst, j.params, res)
	case ScenarioConsume:
		return r.consumeThroughput(ctx, inst, j.params, res)
	case ScenarioTypedConsume:
		return r.typedConsume(ctx, inst, j.params, res)
	case ScenarioBacklog:
		return r.backlogThroughput(ctx, inst, j.params, res)
	case ScenarioLatency:
		return r.latency(ctx, inst, j.params, res)
	case ScenarioRoundTrip:
		return r.roundTripRaw(ctx, inst, j.params, res)
	case ScenarioSteady:
		return r.steady(ctx, inst, j.def, j.params, res)
	case ScenarioVacuum:
		return r.vacuumHold(ctx, inst, j.params, res)
	case ScenarioInFlight:
		return r.inFlight(ctx, inst, j.params, res)
	}
	return fmt.Errorf("scenario %s: no runner for %s", j.scenario, j.def.Name)
}

func (r *runner) runRouted(ctx context.Context, j *job, res *Result) error {
	switch j.scenario {
	case ScenarioRoundTrip, ScenarioAddressed:
		return r.roundTripRouter(ctx, j.def, j.params, res)
	case ScenarioBroadcast:
		return r.broadcastFanOut(ctx, j.def, j.params, res)
	case ScenarioMixed:
		return r.mixed(ctx, j.def, j.params, res)
	case ScenarioInstances:
		return r.instances(ctx, j.def, j.params, res)
	}
	return fmt.Errorf("scenario %s: not routed", j.scenario)
}

// computeRatios fills every result's ratios from its baselines' results.
func computeRatios(jobs []*job, results map[string]*Result) {
	for _, j := range jobs {
		res := results[j.key()]
		if res == nil || res.Error != "" {
			continue
		}
		for _, b := range j.baselines {
			base := results[b.key()]
			if base == nil || base.Error != "" {
				continue
			}
			desc := diffParams(j.params, b.params)
			if res.Latency != nil && base.Latency != nil {
				if base.Latency.P50Ms > 0 {
					res.Ratios = append(res.Ratios, Ratio{Baseline: b.def.Name, BaselineParams: desc, Metric: "p50", BaselineValue: base.Latency.P50Ms, Value: res.Latency.P50Ms / base.Latency.P50Ms})
				}
				if base.Latency.P99Ms > 0 {
					res.Ratios = append(res.Ratios, Ratio{Baseline: b.def.Name, BaselineParams: desc, Metric: "p99", BaselineValue: base.Latency.P99Ms, Value: res.Latency.P99Ms / base.Latency.P99Ms})
				}
				continue
			}
			if base.Throughput > 0 {
				res.Ratios = append(res.Ratios, Ratio{Baseline: b.def.Name, BaselineParams: desc, Metric: "throughput", BaselineValue: base.Throughput, Value: res.Throughput / base.Throughput})
			}
		}
	}
}

// diffParams describes the baseline's parameters where they differ.
func diffParams(p, b Params) string {
	var out []string
	if p.Publishers != b.Publishers {
		out = append(out, plural(b.Publishers, "publisher"))
	}
	if p.Workers != b.Workers {
		out = append(out, plural(b.Workers, "worker"))
	}
	if p.Pending != b.Pending {
		out = append(out, fmt.Sprintf("%d pending", b.Pending))
	}
	if p.Delivery != b.Delivery && b.Delivery != "" {
		out = append(out, b.Delivery+" delivery")
	}
	if p.Instances != b.Instances {
		out = append(out, plural(b.Instances, "instance"))
	}
	if p.Handler != b.Handler {
		out = append(out, b.Handler+" handler")
	}
	if p.Dedup && !b.Dedup {
		out = append(out, "no dedup keys")
	}
	return strings.Join(out, ", ")
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
