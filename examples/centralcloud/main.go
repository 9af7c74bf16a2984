// Command centralcloud is an example CentralCloud service: it embeds the
// QuantumFlow router as a user's service would, votes on the proposals of
// Singularity instances and answers them, receives their execution metrics
// (ordering rollbacks) and patterns (updating the safety profile).
//
// Configuration is the seed's: QUANTUM_FLOW_DATABASE_URL,
// QUANTUM_FLOW_*_WORKERS, QUANTUM_FLOW_MAX_RETRIES,
// QUANTUM_FLOW_RETRY_DELAY_MS, or a YAML file with -config; -url overrides
// the database URL. SIGINT or SIGTERM shuts it down gracefully.
//
// -journal FILE appends a JSON line to FILE for every message the service
// publishes and consumes (internal/journal), for scripts/e2e.sh and tests
// that account for every message across processes.
//
//	go run ./examples/centralcloud -url postgres://localhost/quantumflow
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

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
		fmt.Fprintln(os.Stderr, "centralcloud:", err)
		var ue usageError
		if errors.As(err, &ue) || errors.Is(err, topology.ErrInvalidConfig) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run runs the service until ctx is cancelled.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	fs := flag.NewFlagSet("centralcloud", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file")
	url := fs.String("url", "", "backend URL (overrides QUANTUM_FLOW_MESSAGING_URL, QUANTUM_FLOW_DATABASE_URL and the file)")
	verbose := fs.Bool("v", false, "log every message handled")
	journalPath := fs.String("journal", "", "append every message published and consumed to this file, as JSON lines (for scripts/e2e.sh and tests)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := topology.Load(topology.LoadOptions{
		Service: topology.CentralCloud, Path: *configPath, LookupEnv: lookupEnv,
		Overrides: topology.Overrides{MessagingURL: *url},
	})
	if err != nil {
		return err
	}
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
	cc := &handlers.CentralCloud{Logger: logger}
	rc.Handlers = cc.Handlers()
	r, err := router.New(rc)
	if err != nil {
		return err
	}
	if err := cc.Bind(r); err != nil {
		return err
	}
	logger.Info("centralcloud starting", "backend", backend.String())
	err = r.Run(ctx)
	logger.Info("centralcloud stopped", "proposals", cc.Proposals.Load(), "approved", cc.Approved.Load(),
		"rejected", cc.Rejected.Load(), "metrics", cc.Metrics.Load(), "patterns", cc.Patterns.Load(),
		"rollbacks_sent", cc.RollbacksSent.Load(), "profiles_sent", cc.ProfilesSent.Load())
	return err
}

// usageError is bad usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
