package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgxRaw is the floor for the PostgreSQL backend: the same work written
// directly with pgx against a table shaped like the backend's message
// table, with nothing else (no envelope, no leases, no notifications).
//   - publish of one message: one INSERT in its own transaction (autocommit);
//   - publish of a batch: COPY of the rows in one transaction;
//   - publish with dedup keys (publish_dedup): the same, each row with its
//     key in a unique index (publishKeyed);
//   - consume: claim 100 rows with FOR UPDATE SKIP LOCKED, run the handler
//     on each, delete them, commit; poll every 10 ms when empty. The table
//     is analyzed before consuming starts (see consume).
type pgxRaw struct {
	pool *pgxpool.Pool
}

// rawTable mirrors quantum_flow_messages (backends/postgres/migrations):
// the same columns, one table for every queue, the same queue index in
// delivery order and the same autovacuum settings. Its fillfactor stays at
// the default: the raw loop never updates a row, so it needs no room for
// second row versions.
const rawTable = "bench_raw_messages"

var rawDDL = []string{
	`CREATE TABLE IF NOT EXISTS ` + rawTable + ` (
		seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		id              text NOT NULL,
		queue_name      text NOT NULL,
		payload         bytea NOT NULL,
		metadata        jsonb NOT NULL DEFAULT '{}',
		priority        integer NOT NULL DEFAULT 0,
		status          text NOT NULL DEFAULT 'pending',
		retry_count     integer NOT NULL DEFAULT 0,
		created_at      timestamptz NOT NULL DEFAULT now(),
		available_at    timestamptz NOT NULL DEFAULT now(),
		locked_until    timestamptz,
		locked_by       text,
		last_error      text,
		first_failed_at timestamptz,
		last_failed_at  timestamptz,
		dedup_key       text
	)`,
	`CREATE INDEX IF NOT EXISTS ` + rawTable + `_queue_idx ON ` + rawTable +
		` (queue_name, priority DESC, created_at, seq)`,
	// The least any durable deduplication writes: each key in a unique
	// index beside its message (rows without a key stay out of it).
	`CREATE UNIQUE INDEX IF NOT EXISTS ` + rawTable + `_dedup_idx ON ` + rawTable +
		` (queue_name, dedup_key) WHERE dedup_key IS NOT NULL`,
	`ALTER TABLE ` + rawTable + ` SET (
		autovacuum_vacuum_scale_factor = 0.01,
		autovacuum_vacuum_threshold = 1000,
		autovacuum_vacuum_insert_scale_factor = 0.05,
		autovacuum_analyze_scale_factor = 0.02,
		autovacuum_vacuum_cost_delay = 0
	)`,
}

// rawPoolSize is the connection count of the raw baseline: the issue's
// reference for single-row inserts is "8 connections".
const rawPoolSize = 8

func openPgxRaw(ctx context.Context, dbURL string) (*pgxRaw, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("pgx baseline: %w", err)
	}
	cfg.MaxConns = rawPoolSize
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgx baseline: %w", err)
	}
	for _, q := range rawDDL {
		if _, err := pool.Exec(ctx, q); err != nil {
			pool.Close()
			return nil, fmt.Errorf("pgx baseline: create table: %w", err)
		}
	}
	return &pgxRaw{pool: pool}, nil
}

func (r *pgxRaw) prepare(context.Context, string) error { return nil }

func (r *pgxRaw) publish(ctx context.Context, queue string, payloads [][]byte) error {
	if len(payloads) == 1 {
		_, err := r.pool.Exec(ctx, `INSERT INTO `+rawTable+` (id, queue_name, payload) VALUES ($1, $2, $3)`,
			uuid.NewString(), queue, payloads[0])
		return err
	}
	rows := make([][]any, len(payloads))
	for i, p := range payloads {
		rows[i] = []any{uuid.NewString(), queue, p}
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{rawTable}, []string{"id", "queue_name", "payload"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// publishKeyed is publish with a dedup key per message, in the unique
// index: the floor of what a key costs a PostgreSQL publish. It only
// maintains the index, a duplicate would fail the call (COPY cannot skip
// rows); a real deduplication does more, never less.
func (r *pgxRaw) publishKeyed(ctx context.Context, queue string, payloads [][]byte, keys []string) error {
	if len(payloads) == 1 {
		_, err := r.pool.Exec(ctx, `INSERT INTO `+rawTable+` (id, queue_name, payload, dedup_key) VALUES ($1, $2, $3, $4)`,
			uuid.NewString(), queue, payloads[0], keys[0])
		return err
	}
	rows := make([][]any, len(payloads))
	for i, p := range payloads {
		rows[i] = []any{uuid.NewString(), queue, p, keys[i]}
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{rawTable}, []string{"id", "queue_name", "payload", "dedup_key"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (r *pgxRaw) consume(ctx context.Context, queue string, workers int, handle func([]byte) bool) (func(), error) {
	// Without statistics the planner takes a freshly loaded backlog for
	// one row and sorts the whole queue on every claim (120 ms per claim
	// at 100k rows) until autovacuum's ANALYZE comes round. The floor is
	// the good plan: the index scan that matches the ORDER BY.
	if _, err := r.pool.Exec(ctx, `ANALYZE `+rawTable); err != nil {
		return nil, fmt.Errorf("pgx baseline: analyze: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n, err := r.claimBatch(ctx, queue, handle)
				if errors.Is(err, errHandlerDone) {
					return
				}
				if n > 0 && err == nil {
					continue
				}
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }, nil
}

// errHandlerDone ends a worker whose handler wants no more messages; its
// batch is rolled back, so its rows stay in the queue.
var errHandlerDone = errors.New("handler done")

func (r *pgxRaw) claimBatch(ctx context.Context, queue string, handle func([]byte) bool) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, `SELECT seq, payload FROM `+rawTable+`
		WHERE queue_name = $1 AND status = 'pending' AND available_at <= now()
		ORDER BY priority DESC, created_at, seq
		LIMIT 100 FOR UPDATE SKIP LOCKED`, queue)
	if err != nil {
		return 0, err
	}
	var ids []int64
	var payloads [][]byte
	for rows.Next() {
		var id int64
		var p []byte
		if err := rows.Scan(&id, &p); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
		payloads = append(payloads, p)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	for _, p := range payloads {
		if !handle(p) {
			return 0, errHandlerDone
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+rawTable+` WHERE seq = ANY($1)`, ids); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return len(ids), nil
}

func (r *pgxRaw) close() error {
	r.pool.Close()
	return nil
}

// errNoMessages is returned by scenarios that received nothing at all.
var errNoMessages = errors.New("no message received")
