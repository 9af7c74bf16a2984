// Command singularity is an example Singularity instance: it embeds the
// QuantumFlow router as a user's service would, sends a round of work to
// CentralCloud every -interval (a proposal, its execution metrics and,
// every other round, a pattern) and handles what CentralCloud sends back:
// consensus results, rollback triggers and safety profile updates. Run as
// many as you like against the backend CentralCloud uses, each under its
// own -instance: each gets the results of its own proposals and the
// rollbacks meant for it, and every one gets every safety profile.
//
// Configuration is the seed's: QUANTUM_FLOW_DATABASE_URL,
// QUANTUM_FLOW_*_WORKERS, QUANTUM_FLOW_MAX_RETRIES,
// QUANTUM_FLOW_RETRY_DELAY_MS, QUANTUM_FLOW_INSTANCE_ID, or a YAML file
// with -config; -url overrides the backend URL and -instance the instance
// id. SIGINT or SIGTERM shuts it down gracefully. With -rounds, "rounds
// sent" is logged once the last round is out.
//
// -journal FILE appends a JSON line to FILE for every message the instance
// publishes and consumes (internal/journal), for scripts/e2e.sh and tests
// that account for every message across processes.
//
//	go run ./examples/singularity -url postgres://localhost/quantumflow -instance s1 -rounds 10
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/internal/journal"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
)

func main() {
	ctx, stop := router.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "singularity:", err)
		var ue usageError
		if errors.As(err, &ue) || errors.Is(err, topology.ErrInvalidConfig) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run runs the instance until ctx is cancelled.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	fs := flag.NewFlagSet("singularity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file")
	url := fs.String("url", "", "backend URL (overrides QUANTUM_FLOW_MESSAGING_URL, QUANTUM_FLOW_DATABASE_URL and the file)")
	instance := fs.String("instance", "", "instance id (default: QUANTUM_FLOW_INSTANCE_ID, the file, the host name)")
	interval := fs.Duration("interval", 2*time.Second, "time between rounds of work")
	rounds := fs.Int("rounds", 0, "rounds of work to send, then only handle messages (0: no limit)")
	verbose := fs.Bool("v", false, "log every message handled")
	journalPath := fs.String("journal", "", "append every message published and consumed to this file, as JSON lines (for scripts/e2e.sh and tests)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *interval <= 0 || *rounds < 0 {
		return usageError{errors.New("-interval must be positive and -rounds not negative")}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg, err := topology.Load(topology.LoadOptions{
		Service: topology.Singularity, Path: *configPath, LookupEnv: lookupEnv,
		Overrides: topology.Overrides{MessagingURL: *url, InstanceID: *instance},
	})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("instance", cfg.InstanceID)
	backend, err := pubsub.Open(ctx, cfg.BackendURL(), pubsub.WithLogger(logger))
	if err != nil {
		return err
	}
	defer backend.Close()

	rc := router.Config{Service: cfg, Backend: backend, Logger: logger}
	if *journalPath != "" {
		j, err := journal.Open(*journalPath, cfg.Name, cfg.InstanceID)
		if err != nil {
			return err
		}
		defer j.Close()
		rc.Middlewares, rc.WrapPublisher = []message.HandlerMiddleware{j.Middleware}, j.WrapPublisher
	}
	s := &handlers.Singularity{Instance: cfg.InstanceID, Logger: logger}
	rc.Handlers = s.Handlers()
	r, err := router.New(rc)
	if err != nil {
		return err
	}
	if err := s.Bind(r); err != nil {
		return err
	}

	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-runErr:
		return err
	}
	logger.Info("singularity running", "backend", backend.String())

	// The instance's own work: a round every interval, until ctx ends.
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; (*rounds == 0 || n < *rounds) && ctx.Err() == nil; n++ {
		if _, err := s.Send(ctx, handlers.PlanRound(cfg.InstanceID, n)); err != nil && ctx.Err() == nil {
			logger.Error("sending a round failed", "round", n, "error", err)
		}
		if n == *rounds-1 {
			logger.Info("rounds sent", "rounds", *rounds)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	err = <-runErr
	p := s.SafetyProfile()
	logger.Info("singularity stopped", "approved", s.Approved.Load(), "rejected", s.Rejected.Load(),
		"rollbacks", s.Rollbacks.Load(), "profile_updates", s.ProfileUpdates.Load(), "profile_version", p.Version,
		"results_for_others", s.ResultsForOthers.Load(), "rollbacks_for_others", s.RollbacksForOthers.Load())
	return err
}

// usageError is bad usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
