package reliability

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Backend names.
const (
	Mem      = "mem"
	Postgres = "postgres"
	NATS     = "nats"
)

// Backends returns every backend name.
func Backends() []string { return []string{Mem, Postgres, NATS} }

// Config configures a run.
type Config struct {
	// Short runs every scenario at a size fit for CI (a few minutes in
	// all on two cores).
	Short bool
	// Scenarios restricts the run to these scenarios; empty means all.
	Scenarios []string
	// Backends restricts the run to these backends; empty means all.
	Backends []string
	// Progress receives a line per step while the run goes on. Nil
	// discards.
	Progress io.Writer
	// Logger receives the servers' and backends' logs. Nil discards.
	Logger *slog.Logger
	// Command is the command line that produced the run, written in the
	// report so that it can be regenerated.
	Command string
	// Executable is the program started as a consumer process by the
	// sigkill scenario, with ChildArg as its first argument (the
	// harness's own binary). Empty skips that scenario with a note.
	Executable string
}

// Report is the outcome of a run.
type Report struct {
	Mode    string    `json:"mode"`
	Command string    `json:"command,omitempty"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Machine string    `json:"machine"`
	Load    string    `json:"load_average,omitempty"`
	Results []*Result `json:"results"`
}

// Result is one scenario on one backend.
type Result struct {
	Scenario string `json:"scenario"`
	Backend  string `json:"backend"`
	// Done says what the scenario did, with its sizes.
	Done string `json:"done"`
	// Rule is what must hold for the scenario to pass.
	Rule string `json:"rule"`

	Published    int64 `json:"published"`
	Consumed     int64 `json:"consumed"`
	DeadLettered int64 `json:"dead_lettered"`
	Duplicated   int64 `json:"duplicated"`
	Lost         int64 `json:"lost"`
	// PublishErrors counts publish calls that returned an error (and
	// were tried again).
	PublishErrors int64 `json:"publish_errors"`

	Start Sample `json:"start"`
	End   Sample `json:"end"`
	// Peak is the highest RSS and goroutine count sampled during the run.
	Peak Sample `json:"peak"`

	// Figures are the scenario's own measurements (rates, latencies, dead
	// tuples), in the order they are reported.
	Figures []Figure `json:"figures,omitempty"`
	Seconds float64  `json:"seconds"`
	Pass    bool     `json:"pass"`
	// Why says why the scenario failed or could not run.
	Why string `json:"why,omitempty"`
}

// Figure is one named measurement.
type Figure struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// figure sets the figure name, in place when the result has it already.
func (r *Result) figure(name, format string, args ...any) {
	f := Figure{Name: name, Value: fmt.Sprintf(format, args...)}
	for i := range r.Figures {
		if r.Figures[i].Name == name {
			r.Figures[i] = f
			return
		}
	}
	r.Figures = append(r.Figures, f)
}

// fail marks the result failed with why (the first reason is kept, later
// ones appended).
func (r *Result) fail(format string, args ...any) {
	r.Pass = false
	why := fmt.Sprintf(format, args...)
	if r.Why == "" {
		r.Why = why
	} else {
		r.Why += "; " + why
	}
}

// Run runs the selected scenarios on the selected backends and returns
// the report. A scenario that fails is reported, not returned as an
// error; Run fails only on a cancelled ctx or bad configuration.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios(), s) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(Scenarios(), ", "))
		}
	}
	for _, b := range cfg.Backends {
		if !slices.Contains(Backends(), b) {
			return nil, fmt.Errorf("unknown backend %q (known: %s)", b, strings.Join(Backends(), ", "))
		}
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Mode: "full", Command: cfg.Command, Started: time.Now().UTC(), Machine: machine(), Load: loadAverage()}
	if cfg.Short {
		rep.Mode = "short"
	}
	plan := cfg.plan()
	needPG, needNATS := false, false
	for _, p := range plan {
		needPG = needPG || p.backend == Postgres
		needNATS = needNATS || p.backend == NATS
	}
	e := startEnv(ctx, cfg.Logger, needPG, needNATS)
	defer e.close()
	for _, p := range plan {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, runOne(ctx, cfg, e, p))
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

// planned is one scenario on one backend.
type planned struct {
	sc      *scenario
	backend string
}

// plan lists the selected scenarios on the selected backends they apply
// to, in order.
func (cfg Config) plan() []planned {
	var out []planned
	for _, sc := range scenarios {
		if len(cfg.Scenarios) > 0 && !slices.Contains(cfg.Scenarios, sc.name) {
			continue
		}
		for _, b := range sc.backends {
			if len(cfg.Backends) > 0 && !slices.Contains(cfg.Backends, b) {
				continue
			}
			out = append(out, planned{sc: sc, backend: b})
		}
	}
	return out
}

// runOne runs one scenario on one backend, sampling the process around
// it.
func runOne(ctx context.Context, cfg Config, e *env, p planned) *Result {
	res := &Result{Scenario: p.sc.name, Backend: p.backend, Rule: p.sc.rule, Pass: true}
	fmt.Fprintf(cfg.Progress, "reliability: %s on %s ...\n", p.sc.name, p.backend)
	began := time.Now()
	res.Start = sample()
	sampler := startSampler()
	r := &run{cfg: cfg, env: e, backend: p.backend, res: res, progress: cfg.Progress}
	if err := e.available(p.backend); err != nil {
		res.fail("%v", err)
	} else if err := p.sc.fn(ctx, r); err != nil {
		res.fail("%v", err)
	}
	res.Peak = sampler.stop()
	res.End = sample()
	res.Peak = res.Peak.max(res.End)
	if p.sc.name == ScenarioSoak {
		checkSoak(res)
	}
	res.Seconds = time.Since(began).Seconds()
	verdict := "pass"
	if !res.Pass {
		verdict = "FAIL: " + res.Why
	}
	fmt.Fprintf(cfg.Progress, "reliability: %s on %s: %s (%.1fs; published %d, consumed %d, dead-lettered %d, duplicated %d, lost %d)\n",
		p.sc.name, p.backend, verdict, res.Seconds, res.Published, res.Consumed, res.DeadLettered, res.Duplicated, res.Lost)
	return res
}

// run is one scenario's run on one backend.
type run struct {
	cfg      Config
	env      *env
	backend  string
	res      *Result
	progress io.Writer
}

// pick returns full in a full run and short in a short one.
func pick[T any](r *run, full, short T) T {
	if r.cfg.Short {
		return short
	}
	return full
}

// logf writes a progress line.
func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "  %s/%s: %s\n", r.res.Scenario, r.backend, fmt.Sprintf(format, args...))
}
