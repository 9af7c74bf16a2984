package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/internal/pgtest"

	// The harness opens every backend by URL, as a user does.
	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
)

// env holds the servers of a run: a throwaway PostgreSQL cluster and an
// embedded NATS server on a data directory and port of the harness's, so
// that a scenario can stop it and start it again where clients find it.
type env struct {
	logger *slog.Logger

	pg    *pgtest.Cluster
	pgErr error

	nats     *embedded.Server
	natsDir  string
	natsPort int
	natsErr  error

	seq atomic.Int64
}

var errNotSelected = errors.New("not needed by the selected scenarios")

func startEnv(ctx context.Context, logger *slog.Logger, needPG, needNATS bool) *env {
	e := &env{logger: logger, pgErr: errNotSelected, natsErr: errNotSelected}
	if needPG {
		e.pg, e.pgErr = pgtest.Start(ctx)
	}
	if needNATS {
		e.natsDir, e.natsErr = os.MkdirTemp("", "qf-reliability-nats-")
		if e.natsErr == nil {
			e.natsErr = e.startNATS(ctx)
		}
	}
	return e
}

func (e *env) startNATS(ctx context.Context) error {
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: e.natsDir, Port: e.natsPort, Logger: e.logger})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	e.nats, e.natsPort = srv, srv.Port()
	return nil
}

func (e *env) close() {
	if e.nats != nil {
		_ = e.nats.Close()
	}
	if e.natsDir != "" {
		_ = os.RemoveAll(e.natsDir)
	}
	if e.pg != nil {
		_ = e.pg.Stop()
	}
}

// available returns why backend cannot be used, or nil.
func (e *env) available(backend string) error {
	switch backend {
	case Postgres:
		if e.pg == nil {
			return fmt.Errorf("PostgreSQL unavailable: %w", e.pgErr)
		}
	case NATS:
		if e.nats == nil {
			return fmt.Errorf("NATS unavailable: %w", e.natsErr)
		}
	}
	return nil
}

// url returns a backend URL for a new scenario: a new in-memory store, a
// new database, or the NATS server (queues are apart by their suffix).
func (e *env) url(ctx context.Context, backend string) (string, error) {
	switch backend {
	case Mem:
		return fmt.Sprintf("mem://reliability-%d", e.seq.Add(1)), nil
	case Postgres:
		return e.pg.NewDatabase(ctx)
	case NATS:
		if e.nats == nil {
			return "", fmt.Errorf("NATS unavailable: %w", e.natsErr)
		}
		return e.nats.ClientURL(), nil
	}
	return "", fmt.Errorf("unknown backend %q", backend)
}

// suffix returns a queue suffix not used before in this run.
func (e *env) suffix() string { return fmt.Sprintf("_rel%d", e.seq.Add(1)) }

// stopServer stops the backend's server for outage and starts it again
// on the same port and data: a fast shutdown of PostgreSQL, a shutdown of
// the NATS server.
func (e *env) stopServer(ctx context.Context, backend string, outage time.Duration) error {
	switch backend {
	case Postgres:
		return e.pg.StopFor(ctx, outage)
	case NATS:
		if err := e.nats.Close(); err != nil {
			return err
		}
		e.nats = nil
		if err := sleep(ctx, outage); err != nil {
			return err
		}
		return e.startNATS(ctx)
	}
	return fmt.Errorf("no server to stop on %s", backend)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
