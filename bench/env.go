package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// env holds the servers a run starts for itself: a throwaway PostgreSQL
// cluster (fsync on) and two embedded NATS servers, one with JetStream's
// default sync policy and one with SyncAlways. A server that cannot start
// is recorded, and the subjects needing it report the reason instead of a
// figure.
type env struct {
	logger *slog.Logger

	pg    *pgtest.Cluster
	pgErr error

	nats        *embedded.Server
	natsErr     error
	natsSync    *embedded.Server
	natsSyncErr error
	// natsParams are more URL parameters of the NATS backends
	// (Config.NATSParams).
	natsParams string

	seq atomic.Int64

	// reuseDatabases makes database return one database per key for the
	// whole run (quick mode: CREATE DATABASE costs half a second with
	// fsync on); otherwise every call gets a new one.
	reuseDatabases bool
	databases      map[string]string
	// created lists every database made, for reset to drop.
	created []string
}

func startEnv(ctx context.Context, logger *slog.Logger, needPG, needNATS bool) *env {
	e := &env{logger: logger}
	if needPG {
		e.pg, e.pgErr = pgtest.Start(ctx)
	} else {
		e.pgErr = errNotSelected
	}
	if needNATS {
		e.nats, e.natsErr = embedded.Start(ctx, embedded.Options{Logger: logger})
		e.natsSync, e.natsSyncErr = embedded.Start(ctx, embedded.Options{SyncAlways: true, Logger: logger})
	} else {
		e.natsErr, e.natsSyncErr = errNotSelected, errNotSelected
	}
	return e
}

var errNotSelected = fmt.Errorf("not needed by the selected subjects")

func (e *env) close() {
	if e.nats != nil {
		_ = e.nats.Close()
	}
	if e.natsSync != nil {
		_ = e.natsSync.Close()
	}
	if e.pg != nil {
		_ = e.pg.Stop()
	}
}

// database returns the URL of a new empty database, or with
// reuseDatabases the one made before for key.
func (e *env) database(ctx context.Context, key string) (string, error) {
	if e.pg == nil {
		return "", fmt.Errorf("PostgreSQL unavailable: %w", e.pgErr)
	}
	if u, ok := e.databases[key]; ok && e.reuseDatabases {
		return u, nil
	}
	u, err := e.pg.NewDatabase(ctx)
	if err != nil {
		return "", err
	}
	if e.databases == nil {
		e.databases = map[string]string{}
	}
	e.databases[key] = u
	e.created = append(e.created, u)
	return u, nil
}

// reset clears what earlier scenarios left behind before the next one:
// their databases are dropped and the cluster checkpointed (so their
// writes are not flushed in the middle of the next measurement), and the
// NATS servers are replaced by fresh ones (JetStream's periodic sync would
// otherwise flush a previous scenario's backlog during the next). Nothing
// may be open on the servers when it runs. Errors are logged: a reset that
// fails leaves the run noisier, not wrong.
func (e *env) reset(ctx context.Context) {
	e.dropDatabases(ctx)
	if e.nats != nil {
		_ = e.nats.Close()
		e.nats, e.natsErr = embedded.Start(ctx, embedded.Options{Logger: e.logger})
	}
	if e.natsSync != nil {
		_ = e.natsSync.Close()
		e.natsSync, e.natsSyncErr = embedded.Start(ctx, embedded.Options{SyncAlways: true, Logger: e.logger})
	}
}

// dropDatabases drops the databases made so far and checkpoints the
// cluster, so that the next measurement pays neither for autovacuum of
// their dead rows nor for flushing their writes. Without it, the second of
// two consume measurements ran ~25% slower than the first whichever
// handler it used (typed_consume on PostgreSQL: 0.70× in one order, 1.03×
// in the other). Nothing may be open on those databases when it runs.
func (e *env) dropDatabases(ctx context.Context) {
	if e.pg == nil || e.reuseDatabases {
		return
	}
	for _, u := range e.created {
		if err := e.pg.DropDatabase(ctx, u); err != nil {
			e.logger.Warn("bench: drop database", "err", err)
		}
	}
	e.created, e.databases = nil, nil
	if conn, err := pgx.Connect(ctx, e.pg.URL()); err == nil {
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			e.logger.Warn("bench: checkpoint", "err", err)
		}
		_ = conn.Close(context.WithoutCancel(ctx))
	}
}

// natsURL returns the client URL of the default (sync=false) or SyncAlways
// server.
func (e *env) natsURL(sync bool) (string, error) {
	if sync {
		if e.natsSync == nil {
			return "", fmt.Errorf("embedded NATS (SyncAlways) unavailable: %w", e.natsSyncErr)
		}
		return e.natsSync.ClientURL(), nil
	}
	if e.nats == nil {
		return "", fmt.Errorf("embedded NATS unavailable: %w", e.natsErr)
	}
	return e.nats.ClientURL(), nil
}

// backendNATSURL is natsURL with the run's parameters for the NATS
// backends (the raw baselines take none).
func (e *env) backendNATSURL(sync bool) (string, error) {
	u, err := e.natsURL(sync)
	if err != nil || e.natsParams == "" {
		return u, err
	}
	return u + "?" + e.natsParams, nil
}

// checkNATSParams opens a NATS backend with the run's parameters, so that
// a parameter the backend refuses fails the run before it starts.
func (e *env) checkNATSParams(ctx context.Context) error {
	u, err := e.backendNATSURL(false)
	if err != nil {
		return nil // no server: the NATS measurements say so
	}
	b, err := pubsub.Open(ctx, u)
	if err != nil {
		return err
	}
	return b.Close()
}

// queueName returns a queue name not used before in this run.
func (e *env) queueName(prefix string) string {
	return fmt.Sprintf("bench_%s_%d", prefix, e.seq.Add(1))
}

// postgresInfo reads the server's version and the settings that decide
// what its figures mean.
func (e *env) postgresInfo(ctx context.Context) (version string, settings map[string]string, err error) {
	if e.pg == nil {
		return "", nil, e.pgErr
	}
	conn, err := pgx.Connect(ctx, e.pg.URL())
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		return "", nil, err
	}
	settings = map[string]string{}
	for _, name := range []string{"fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "shared_buffers", "max_wal_size", "max_connections"} {
		var v string
		if err := conn.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
			return "", nil, err
		}
		settings[name] = v
	}
	return version, settings, nil
}

// natsVersion is the version of the embedded nats-server.
func natsVersion() string { return server.VERSION }
