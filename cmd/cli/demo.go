package cli

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/demo"
	"github.com/quantumflow/quantumflow/topology"
)

func (a *app) demoCommand() *cobra.Command {
	var o demo.Options
	maxRetries := topology.DefaultMaxRetries
	retryDelay := demo.DefaultRetryDelay
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
URL), in a namespace of its own (a PostgreSQL schema, a NATS stream prefix):
it never reads, alters or re-declares the backend's own queues, and removes
what it made at the end unless --keep. Worker counts come from the configuration as usual (--profile, the
QUANTUM_FLOW_*_WORKERS variables, --config); retries use --retry-delay and
--max-retries so that the demo finishes in seconds.

The demo is the package github.com/quantumflow/quantumflow/demo (demo.Run).`,
		Example: `  quantumflow demo
  quantumflow demo --json
  quantumflow demo --data-dir /tmp/qf-demo
  quantumflow demo --url mem://demo --instances 5 --rounds 40`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			switch {
			case o.Instances < 1:
				return usageErrorf("--instances must be at least 1, got %d", o.Instances)
			case o.Rounds < 1:
				return usageErrorf("--rounds must be at least 1, got %d", o.Rounds)
			case o.Interval < 0, retryDelay < 0, o.Timeout <= 0, o.ProgressEvery <= 0:
				return usageErrorf("--interval and --retry-delay must not be negative, --timeout and --progress must be positive")
			case maxRetries < 0:
				return usageErrorf("--max-retries must not be negative, got %d", maxRetries)
			case o.DataDir != "" && a.urlSet:
				return usageErrorf("--data-dir is for the embedded NATS server; it cannot be combined with --url")
			}
			if a.urlSet {
				o.URL = a.url
			}
			o.MaxRetries, o.RetryDelay = &maxRetries, &retryDelay
			o.Config = a.loadOptions()
			if a.logLevelSet {
				o.Logger = a.logger()
			}
			sum, err := demo.Run(ctx, o, a.env.Stderr)
			if errors.Is(err, demo.ErrInvalidOptions) {
				return usageError{err}
			}
			if sum.Queues == nil {
				return err // the run did not start: there is nothing to summarise
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				return errors.Join(err, writeJSONLine(out, sum))
			}
			return errors.Join(err, sum.WriteText(out))
		}),
	}
	f := c.Flags()
	f.IntVar(&o.Instances, "instances", demo.DefaultInstances, "how many Singularity instances to run")
	f.IntVar(&o.Rounds, "rounds", demo.DefaultRounds, "rounds of work per instance (a proposal, metrics and every other round a pattern)")
	f.DurationVar(&o.Interval, "interval", 20*time.Millisecond, "pause between an instance's rounds")
	f.DurationVar(&retryDelay, "retry-delay", demo.DefaultRetryDelay, "delay before the first retry (doubles each retry)")
	f.IntVar(&maxRetries, "max-retries", topology.DefaultMaxRetries, "retries before a failing message is dead-lettered")
	f.DurationVar(&o.Timeout, "timeout", demo.DefaultTimeout, "give up waiting for messages to settle after this long")
	f.StringVar(&o.DataDir, "data-dir", "", "keep the embedded NATS server's data here (default: a temporary directory, removed at exit)")
	f.BoolVar(&o.Keep, "keep", false, "keep the demo's namespace (queues, dead letters) at the end; its name is printed")
	f.DurationVar(&o.ProgressEvery, "progress", demo.DefaultProgressEvery, "how often to print progress on stderr")
	return c
}
