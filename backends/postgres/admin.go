package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Init creates or upgrades the tables in the configured schema.
func (d *Driver) Init(ctx context.Context) error {
	applied, err := migrate(ctx, d.pool, d.cfg.schema, migrationFiles)
	if err != nil {
		return fmt.Errorf("schema %s: %w", d.cfg.schema, d.wrapErr(err))
	}
	if len(applied) > 0 {
		d.log.Info("quantumflow: postgres: schema migrated", "schema", d.cfg.schema, "applied", applied)
	}
	return nil
}

// DeclareQueue creates or updates a queue in quantum_flow_queues.
func (d *Driver) DeclareQueue(ctx context.Context, spec pubsub.QueueSpec) error {
	// Stored as given: MaxRetries 0 is "never retry", RetryDelay 0 "at once".
	_, err := d.pool.Exec(ctx, `
INSERT INTO `+d.q.queues+` (name, priority, max_retries, retry_delay_ms, dedup_window_ms) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE SET priority = EXCLUDED.priority, max_retries = EXCLUDED.max_retries,
    retry_delay_ms = EXCLUDED.retry_delay_ms, dedup_window_ms = EXCLUDED.dedup_window_ms, updated_at = now()`,
		spec.Name, int32(spec.Priority), spec.MaxRetries, spec.RetryDelay.Milliseconds(), spec.DedupWindow.Milliseconds())
	if err != nil {
		return d.wrapErr(err)
	}
	d.markKnown([]string{spec.Name})
	return nil
}

// ListQueues lists the queues of quantum_flow_queues by name.
func (d *Driver) ListQueues(ctx context.Context) ([]pubsub.QueueInfo, error) {
	rows, err := d.pool.Query(ctx, `SELECT name, priority, max_retries, retry_delay_ms, coalesce(dedup_window_ms, $1), created_at FROM `+d.q.queues+` ORDER BY name`,
		pubsub.DefaultDedupWindow.Milliseconds())
	if err != nil {
		return nil, d.wrapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pubsub.QueueInfo, error) {
		var qi pubsub.QueueInfo
		var prio int32
		var delayMS, windowMS int64
		err := r.Scan(&qi.Name, &prio, &qi.MaxRetries, &delayMS, &windowMS, &qi.CreatedAt)
		qi.Priority = pubsub.Priority(prio)
		qi.RetryDelay = time.Duration(delayMS) * time.Millisecond
		qi.DedupWindow = time.Duration(windowMS) * time.Millisecond
		return qi, err
	})
	if err != nil {
		return nil, d.wrapErr(err)
	}
	return out, nil
}

// queueExists reports whether quantum_flow_queues has the queue.
func (d *Driver) queueExists(ctx context.Context, queue string) error {
	var ok bool
	if err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+d.q.queues+` WHERE name = $1)`, queue).Scan(&ok); err != nil {
		return d.wrapErr(err)
	}
	if !ok {
		return pubsub.ErrQueueNotFound
	}
	return nil
}

// Counter keys of QueueStats.Counters.
const (
	// CounterDeadTuples is n_dead_tup of quantum_flow_messages (all
	// queues): rows deleted or updated and not yet vacuumed.
	CounterDeadTuples = "dead_tuples"
	// CounterLiveTuples is n_live_tup of quantum_flow_messages.
	CounterLiveTuples = "live_tuples"
	// CounterOldestTransactionAge is the age in seconds of the oldest
	// open transaction in the database (0 when none). A long one holds
	// back vacuum: dead tuples pile up and the claim slows down.
	CounterOldestTransactionAge = "oldest_transaction_age_seconds"
	// CounterOldestXminAge is how many transactions old the oldest
	// snapshot in the database is (the xmin horizon vacuum must respect).
	CounterOldestXminAge = "oldest_xmin_age_xids"
	// CounterSecondsSinceAutovacuum is the time since autovacuum last
	// processed quantum_flow_messages (-1: never).
	CounterSecondsSinceAutovacuum = "seconds_since_autovacuum"
)

// Stats counts a queue's messages by state and reports the health of the
// messages table.
func (d *Driver) Stats(ctx context.Context, queue string) (pubsub.QueueStats, error) {
	st := pubsub.QueueStats{Queue: queue}
	if err := d.settler.flush(ctx); err != nil {
		return st, d.wrapErr(err)
	}
	if err := d.queueExists(ctx, queue); err != nil {
		return st, err
	}
	var oldestUS *int64
	// One pass over the queue's rows through the queue index, and one
	// over the parked leases.
	err := d.pool.QueryRow(ctx, `
SELECT w.ready, w.scheduled, w.oldest_us,
       w.leased + (SELECT count(*) FROM `+d.q.messages+` WHERE parked_until IS NOT NULL AND queue_name = $1),
       (SELECT count(*) FROM `+d.q.dlq+` WHERE queue_name = $1)
FROM (SELECT count(*) FILTER (WHERE status = 'pending' AND available_at <= now()) AS ready,
             count(*) FILTER (WHERE status = 'pending' AND available_at > now()) AS scheduled,
             (extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending' AND available_at <= now())) * 1e6)::int8 AS oldest_us,
             count(*) FILTER (WHERE status = 'processing') AS leased
      FROM `+d.q.messages+` WHERE queue_name = $1 AND parked_until IS NULL) w`, queue).Scan(&st.Pending, &st.Scheduled, &oldestUS, &st.InFlight, &st.DeadLetters)
	if err != nil {
		return st, d.wrapErr(err)
	}
	if oldestUS != nil {
		// Never zero while something is pending, even within the same
		// microsecond.
		st.OldestPendingAge = max(time.Duration(*oldestUS)*time.Microsecond, time.Microsecond)
	}
	var dead, live, xactAge, xminAge, sinceVacuum int64
	err = d.pool.QueryRow(ctx, `
SELECT coalesce(t.n_dead_tup, 0), coalesce(t.n_live_tup, 0),
       coalesce(extract(epoch FROM now() - greatest(t.last_autovacuum, t.last_vacuum))::int8, -1),
       coalesce((SELECT extract(epoch FROM max(now() - xact_start))::int8 FROM pg_stat_activity
                 WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()), 0),
       coalesce((SELECT max(age(backend_xmin)) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()), 0)
FROM (SELECT 1) one
LEFT JOIN pg_stat_user_tables t ON t.relid = $1::regclass`, d.q.messages).Scan(&dead, &live, &sinceVacuum, &xactAge, &xminAge)
	if err != nil {
		return st, d.wrapErr(err)
	}
	st.Counters = map[string]int64{
		CounterDeadTuples:             dead,
		CounterLiveTuples:             live,
		CounterOldestTransactionAge:   xactAge,
		CounterOldestXminAge:          xminAge,
		CounterSecondsSinceAutovacuum: sinceVacuum,
	}
	return st, nil
}

// ListPending lists a queue's waiting messages: those ready now in
// delivery order, then those scheduled for a retry by when they are due.
func (d *Driver) ListPending(ctx context.Context, queue string, limit int) ([]pubsub.PendingMessage, error) {
	if err := d.settler.flush(ctx); err != nil {
		return nil, d.wrapErr(err)
	}
	if err := d.queueExists(ctx, queue); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `
SELECT id, queue_name, created_at, retry_count, priority, payload, metadata,
       CASE WHEN available_at > now() THEN available_at END
FROM `+d.q.messages+`
WHERE queue_name = $1 AND parked_until IS NULL AND status = 'pending'
ORDER BY available_at > now(), CASE WHEN available_at > now() THEN available_at END,
         priority DESC, created_at, seq
LIMIT $2`, queue, limit)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pubsub.PendingMessage, error) {
		var p pubsub.PendingMessage
		var prio int32
		var md []byte
		var avail *time.Time
		if err := r.Scan(&p.ID, &p.Queue, &p.CreatedAt, &p.Attempts, &prio, &p.Payload, &md, &avail); err != nil {
			return p, err
		}
		p.Priority = pubsub.Priority(prio)
		if avail != nil {
			p.AvailableAt = *avail
		}
		return p, unmarshalMetadata(md, &p.Metadata)
	})
	if err != nil {
		return nil, d.wrapErr(err)
	}
	return out, nil
}

func unmarshalMetadata(b []byte, dst *map[string]string) error {
	if len(b) <= 2 {
		return nil
	}
	return json.Unmarshal(b, dst)
}

// dlqWhere returns the WHERE clause and arguments selecting q's dead
// letters.
func dlqWhere(q pubsub.DeadLetterQuery) (string, []any) {
	var conds []string
	var args []any
	if q.Queue != "" {
		args = append(args, q.Queue)
		conds = append(conds, fmt.Sprintf("queue_name = $%d", len(args)))
	}
	if len(q.IDs) > 0 {
		args = append(args, q.IDs)
		conds = append(conds, fmt.Sprintf("id = ANY($%d::text[])", len(args)))
	}
	if len(conds) == 0 {
		return "TRUE", args
	}
	return strings.Join(conds, " AND "), args
}

// ListDeadLetters lists dead letters, newest first.
func (d *Driver) ListDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) ([]pubsub.DeadLetter, error) {
	if err := d.settler.flush(ctx); err != nil {
		return nil, d.wrapErr(err)
	}
	where, args := dlqWhere(q)
	sql := `SELECT id, queue_name, payload, metadata, error, attempts, coalesce(handler, ''), coalesce(service, ''),
       first_failed_at, last_failed_at, created_at
FROM ` + d.q.dlq + ` WHERE ` + where + ` ORDER BY created_at DESC, seq DESC`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pubsub.DeadLetter, error) {
		var dl pubsub.DeadLetter
		var md []byte
		var first, last *time.Time
		if err := r.Scan(&dl.ID, &dl.Queue, &dl.Payload, &md, &dl.Error, &dl.Attempts, &dl.Handler, &dl.Service, &first, &last, &dl.CreatedAt); err != nil {
			return dl, err
		}
		if first != nil {
			dl.FirstFailureAt = *first
		}
		if last != nil {
			dl.LastFailureAt = *last
		}
		return dl, unmarshalMetadata(md, &dl.Metadata)
	})
	if err != nil {
		return nil, d.wrapErr(err)
	}
	return out, nil
}

// dlqSelect returns a subquery selecting the seqs of q's dead letters,
// oldest first, capped by q.Limit, locked so that concurrent retries and
// purges do not both take a row.
func dlqSelect(dlq string, q pubsub.DeadLetterQuery) (string, []any) {
	where, args := dlqWhere(q)
	sql := `SELECT seq FROM ` + dlq + ` WHERE ` + where + ` ORDER BY created_at, seq`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return sql + " FOR UPDATE SKIP LOCKED", args
}

// RetryDeadLetters moves dead letters back to their queues as new
// messages (attempts and failure times reset; id, payload, metadata and
// priority kept), in one transaction.
func (d *Driver) RetryDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) (int, error) {
	sel, args := dlqSelect(d.q.dlq, q)
	rows, err := d.pool.Query(ctx, `
WITH d AS (
    DELETE FROM `+d.q.dlq+` WHERE seq IN (`+sel+`)
    RETURNING seq, id, queue_name, payload, metadata, priority
), ins AS (
    INSERT INTO `+d.q.messages+` (id, queue_name, payload, metadata, priority)
    SELECT id, queue_name, payload, metadata, priority FROM d ORDER BY seq
    RETURNING queue_name
)
SELECT queue_name, count(*) FROM ins GROUP BY queue_name`, args...)
	if err != nil {
		return 0, d.wrapErr(err)
	}
	var total int
	var queues []string
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			rows.Close()
			return 0, d.wrapErr(err)
		}
		queues = append(queues, name)
		total += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, d.wrapErr(err)
	}
	// A dead letter's queue is known, unless its row was deleted by hand.
	if _, err := d.pool.Exec(ctx, d.q.ensureQueues, ensureArgs(queues)...); err != nil {
		d.log.Warn("quantumflow: postgres: retried dead letters' queues not listed", "queues", queues, "error", d.wrapErr(err))
	}
	for _, name := range queues {
		d.returned(name)
	}
	d.notifier.after(queues)
	return total, nil
}

// PurgeDeadLetters deletes dead letters.
func (d *Driver) PurgeDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) (int, error) {
	sel, args := dlqSelect(d.q.dlq, q)
	tag, err := d.pool.Exec(ctx, `DELETE FROM `+d.q.dlq+` WHERE seq IN (`+sel+`)`, args...)
	if err != nil {
		return 0, d.wrapErr(err)
	}
	return int(tag.RowsAffected()), nil
}
