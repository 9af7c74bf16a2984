package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/quantumflow/quantumflow/bench"
)

// benchOptions are the bench command's flags.
type benchOptions struct {
	quick     bool
	out       string
	results   string
	scenarios []string
	subjects  []string
}

func (a *app) benchCommand() *cobra.Command {
	var o benchOptions
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the backends against raw pgx, watermill-sql, GoChannel and nats.go baselines",
		Long: `bench measures the in-memory, PostgreSQL and NATS JetStream backends through the
public API, and in the same run the baselines they are judged against: raw pgx
on a table shaped like the backend's, stock watermill-sql (as shipped, and
its queue schema with DeleteOnAck), Watermill's GoChannel and raw nats.go jetstream. Every backend figure comes
with its ratio to its baseline, and the performance targets of the PostgreSQL
and NATS issues are checked (met or not, with the figure).

Scenarios: ` + strings.Join(bench.Scenarios(), ", ") + `.
Subjects: ` + strings.Join(bench.Subjects(), ", ") + `.

It starts what it needs and stops it afterwards: a throwaway PostgreSQL cluster
(fsync on; or the server named by QUANTUM_FLOW_TEST_DATABASE_URL) and two
embedded NATS servers (JetStream's default sync policy, and SyncAlways). The
global --url is not used. Progress goes to stderr; the results as Markdown to
stdout (one JSON object with --json). --out writes results.json, results.md
and results.svg into a directory; --results writes the Markdown report to a
file (bench/RESULTS.md) and its chart and data beside it (RESULTS.svg,
RESULTS.json).

The full run takes about ten minutes on two cores; --quick runs every scenario
at smoke-test size in well under a minute (its figures mean little). Exit
status 1 when a measurement failed; unmet targets are reported, not failures.`,
		Example: `  quantumflow bench --quick
  quantumflow bench --out bench/out --results bench/RESULTS.md
  quantumflow bench --scenario publish,consume --subject postgres,pgx,watermill_sql`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			for _, s := range o.scenarios {
				if !slices.Contains(bench.Scenarios(), s) {
					return usageErrorf("--scenario %q: unknown (known: %s)", s, strings.Join(bench.Scenarios(), ", "))
				}
			}
			for _, s := range o.subjects {
				if !slices.Contains(bench.Subjects(), s) {
					return usageErrorf("--subject %q: unknown (known: %s)", s, strings.Join(bench.Subjects(), ", "))
				}
			}
			return a.runBench(ctx, cmd, o)
		}),
	}
	f := c.Flags()
	f.BoolVar(&o.quick, "quick", false, "smoke run: every scenario at a tiny size, under a minute")
	f.StringVar(&o.out, "out", "", "write results.json, results.md and results.svg into this directory")
	f.StringVar(&o.results, "results", "", "write the Markdown report to this file (e.g. bench/RESULTS.md), its chart and JSON beside it")
	f.StringSliceVar(&o.scenarios, "scenario", nil, "run only these scenarios (comma-separated)")
	f.StringSliceVar(&o.subjects, "subject", nil, "measure only these backends and baselines (comma-separated)")
	return c
}

func (a *app) runBench(ctx context.Context, cmd *cobra.Command, o benchOptions) error {
	cfg := bench.Config{
		Quick:     o.quick,
		Scenarios: o.scenarios,
		Subjects:  o.subjects,
		Progress:  a.env.Stderr,
		Command:   benchCommandLine(cmd),
	}
	if a.logLevelSet {
		cfg.Logger = a.logger()
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := rep.WriteFiles(o.out); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stderr, "bench: wrote %s, %s and %s in %s\n", bench.FileJSON, bench.FileMarkdown, bench.FileSVG, o.out)
	}
	if o.results != "" {
		if err := rep.WriteResultsFiles(o.results); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stderr, "bench: wrote %s with its chart (.svg) and data (.json) beside it\n", o.results)
	}
	out := cmd.OutOrStdout()
	if a.jsonOut {
		if err := rep.WriteJSON(out); err != nil {
			return err
		}
	} else if err := rep.WriteMarkdown(out, ""); err != nil {
		return err
	}
	var failed []string
	for _, r := range rep.Results {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s/%s", r.Scenario, r.Subject))
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		failed = slices.Compact(failed)
		return fmt.Errorf("bench: %d measurement(s) failed: %s (see the results for why)", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// benchCommandLine is the command that reproduces this run, written at the
// top of the report.
func benchCommandLine(cmd *cobra.Command) string {
	parts := []string{"go run ./cmd/quantumflow bench"}
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
