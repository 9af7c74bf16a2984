package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quantumflow/quantumflow/bench"
	"github.com/quantumflow/quantumflow/pubsub"
)

// Exit statuses, as quantumflow's.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// options are the command's flags.
type options struct {
	quick      bool
	out        string
	results    string
	scenarios  []string
	subjects   []string
	jsonOut    bool
	logLevel   string
	logFormat  string
	cpuProfile string
	natsParams string
}

// usageError marks an error as bad usage (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run runs the benchmark with args (without the program name), writing
// the report to stdout and progress and errors to stderr, and returns the
// exit status: 0 success, 1 a measurement failed, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	c := &cobra.Command{
		Use:   "quantumflow-bench",
		Short: "Benchmark the backends against raw pgx, watermill-sql, GoChannel and nats.go baselines",
		Long: `quantumflow-bench measures the in-memory, PostgreSQL and NATS JetStream backends
through the public API, and in the same run the baselines they are judged
against: raw pgx on a table shaped like the backend's, stock watermill-sql (as
shipped, and its queue schema with DeleteOnAck), Watermill's GoChannel and raw
nats.go jetstream. Every backend figure comes with its ratio to its baseline,
and the performance targets of the PostgreSQL and NATS issues and of delivery
to instances (the addressed round trip against the work-queue one) and of typed
contracts (typed consume against untyped) are checked (met or not, with the
figure).

Scenarios: ` + strings.Join(bench.Scenarios(), ", ") + `.
Subjects: ` + strings.Join(bench.Subjects(), ", ") + `.

It starts what it needs and stops it afterwards: a throwaway PostgreSQL cluster
(fsync on; or the server named by QUANTUM_FLOW_TEST_DATABASE_URL) and two
embedded NATS servers (JetStream's default sync policy, and SyncAlways).
Progress goes to stderr; the results as Markdown to stdout (one JSON object
with --json). --out writes results.json, results.md and results.svg into a
directory; --results writes the Markdown report to a file (bench/RESULTS.md)
and its chart and data beside it (RESULTS.svg, RESULTS.json).

The full run takes about 45 minutes on two cores; --quick runs every scenario
at smoke-test size in well under a minute (its figures mean little).

It is a binary of its own, not a command of quantumflow, so that the operator
tool does not link the throwaway PostgreSQL clusters and the baselines' client
libraries.

Exit status: 0 success, 1 a measurement failed (unmet targets are reported,
not failures), 2 bad usage.`,
		Example: `  go run ./cmd/quantumflow-bench --quick
  go run ./cmd/quantumflow-bench --out bench/out --results bench/RESULTS.md
  go run ./cmd/quantumflow-bench --scenario publish,consume --subject postgres,pgx,watermill_sql
  go run ./cmd/quantumflow-bench --quick --scenario addressed,broadcast --subject mem,postgres,nats`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q (quantumflow-bench takes flags only)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(cmd, stderr)
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cfg, stdout, stderr)
		},
	}
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := c.Flags()
	f.BoolVar(&o.quick, "quick", false, "smoke run: every scenario at a tiny size, under a minute")
	f.StringVar(&o.out, "out", "", "write results.json, results.md and results.svg into this directory")
	f.StringVar(&o.results, "results", "", "write the Markdown report to this file (e.g. bench/RESULTS.md), its chart and JSON beside it")
	f.StringSliceVar(&o.scenarios, "scenario", nil, "run only these scenarios (comma-separated)")
	f.StringSliceVar(&o.subjects, "subject", nil, "measure only these backends and baselines (comma-separated)")
	f.BoolVar(&o.jsonOut, "json", false, "print the report as one JSON object instead of Markdown")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level of the backends' logs on stderr (only when given): debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	f.StringVar(&o.natsParams, "nats-params", "", "more URL parameters for the NATS backends, as a query (e.g. consumer_storage=memory)")
	c.SetArgs(args)
	c.SetOut(stdout)
	c.SetErr(stderr)
	c.SetContext(ctx)
	err := c.Execute()
	if err == nil {
		return exitOK
	}
	code := exitFailure
	if errors.As(err, new(usageError)) || errors.Is(err, pubsub.ErrInvalidURL) {
		code = exitUsage
	}
	if o.jsonOut {
		line, _ := json.Marshal(map[string]any{"error": err.Error(), "exit": code})
		fmt.Fprintf(stderr, "%s\n", line)
	} else {
		fmt.Fprintf(stderr, "Error: %s\n", err)
		if code == exitUsage {
			fmt.Fprintln(stderr, "Run 'quantumflow-bench --help' for usage.")
		}
	}
	return code
}

// config checks the flags and returns the harness's configuration.
func (o options) config(cmd *cobra.Command, stderr io.Writer) (bench.Config, error) {
	for _, s := range o.scenarios {
		if !slices.Contains(bench.Scenarios(), s) {
			return bench.Config{}, usageErrorf("--scenario %q: unknown (known: %s)", s, strings.Join(bench.Scenarios(), ", "))
		}
	}
	for _, s := range o.subjects {
		if !slices.Contains(bench.Subjects(), s) {
			return bench.Config{}, usageErrorf("--subject %q: unknown (known: %s)", s, strings.Join(bench.Subjects(), ", "))
		}
	}
	if q, err := url.ParseQuery(o.natsParams); err != nil || q.Has("") {
		return bench.Config{}, usageErrorf("--nats-params %q: want a URL query such as consumer_storage=memory", o.natsParams)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return bench.Config{}, usageErrorf("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return bench.Config{}, usageErrorf("--log-format %q: use text or json", o.logFormat)
	}
	cfg := bench.Config{
		Quick:      o.quick,
		Scenarios:  o.scenarios,
		Subjects:   o.subjects,
		Progress:   stderr,
		Command:    commandLine(cmd),
		NATSParams: o.natsParams,
	}
	if cmd.Flags().Changed("log-level") {
		hopts := &slog.HandlerOptions{Level: level}
		if o.logFormat == "json" {
			cfg.Logger = slog.New(slog.NewJSONHandler(stderr, hopts))
		} else {
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, hopts))
		}
	}
	return cfg, nil
}

// run runs the harness and writes its report.
func (o options) run(ctx context.Context, cfg bench.Config, stdout, stderr io.Writer) error {
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := rep.WriteFiles(o.out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote %s, %s and %s in %s\n", bench.FileJSON, bench.FileMarkdown, bench.FileSVG, o.out)
	}
	if o.results != "" {
		if err := rep.WriteResultsFiles(o.results); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote %s with its chart (.svg) and data (.json) beside it\n", o.results)
	}
	if o.jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteMarkdown(stdout, "")
	}
	if err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("bench: %d measurement(s) failed: %s (see the results for why)", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// commandLine is the command that reproduces this run, written at the top
// of the report.
func commandLine(cmd *cobra.Command) string {
	parts := []string{"go run ./cmd/quantumflow-bench"}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "bool":
			parts = append(parts, "--"+f.Name)
		case "stringSlice":
			vals, _ := cmd.Flags().GetStringSlice(f.Name)
			parts = append(parts, "--"+f.Name+" "+strings.Join(vals, ","))
		default:
			parts = append(parts, "--"+f.Name+" "+f.Value.String())
		}
	})
	return strings.Join(parts, " ")
}

// startCPUProfile starts writing a CPU profile to path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, usageErrorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
