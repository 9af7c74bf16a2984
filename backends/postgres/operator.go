package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

var (
	_ pubsub.QueuePauser  = (*Driver)(nil)
	_ pubsub.MessageStore = (*Driver)(nil)
)

// SetQueuePaused adds queue to quantum_flow_paused_queues, or removes it.
func (d *Driver) SetQueuePaused(ctx context.Context, queue string, paused bool) error {
	var err error
	if paused {
		_, err = d.pool.Exec(ctx, `INSERT INTO `+d.q.paused+` (queue_name) VALUES ($1) ON CONFLICT (queue_name) DO NOTHING`, queue)
	} else {
		_, err = d.pool.Exec(ctx, `DELETE FROM `+d.q.paused+` WHERE queue_name = $1`, queue)
	}
	return d.wrapErr(err)
}

// PausedQueues reads quantum_flow_paused_queues.
func (d *Driver) PausedQueues(ctx context.Context) ([]string, error) {
	rows, err := d.pool.Query(ctx, `SELECT queue_name FROM `+d.q.paused)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	qs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return qs, d.wrapErr(err)
}

// GetMessage reads message id from quantum_flow_messages. No index serves
// the lookup by id (one would cost every publish an index insert): it
// reads the table, which holds only messages not yet acknowledged.
func (d *Driver) GetMessage(ctx context.Context, queue, id string) (pubsub.MessageDetail, error) {
	if err := d.settler.flush(ctx); err != nil {
		return pubsub.MessageDetail{}, d.wrapErr(err)
	}
	var (
		m                       pubsub.MessageDetail
		status                  string
		scheduled               bool
		prio                    int32
		md                      []byte
		lastError               *string
		avail                   time.Time
		firstFailed, lastFailed *time.Time
	)
	err := d.pool.QueryRow(ctx, `
SELECT id, queue_name, status, available_at > now(), payload, metadata, priority, retry_count, last_error,
       created_at, available_at, first_failed_at, last_failed_at
FROM `+d.q.messages+`
WHERE id = $1 AND ($2 = '' OR queue_name = $2)
ORDER BY seq LIMIT 1`, id, queue).Scan(&m.ID, &m.Queue, &status, &scheduled, &m.Payload, &md, &prio, &m.Attempts,
		&lastError, &m.CreatedAt, &avail, &firstFailed, &lastFailed)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
	}
	if err != nil {
		return m, d.wrapErr(err)
	}
	m.Priority = pubsub.Priority(prio)
	switch {
	case status == "processing":
		// retry_count counts the deliveries before this one.
		m.State, m.Attempts = pubsub.StateInFlight, m.Attempts+1
	case scheduled:
		m.State, m.AvailableAt = pubsub.StateScheduled, avail
	default:
		m.State = pubsub.StatePending
	}
	if lastError != nil {
		m.LastError = *lastError
	}
	if firstFailed != nil {
		m.FirstFailureAt = *firstFailed
	}
	if lastFailed != nil {
		m.LastFailureAt = *lastFailed
	}
	return m, unmarshalMetadata(md, &m.Metadata)
}

// DeleteMessage deletes the waiting rows of message id (see GetMessage
// for the lookup).
func (d *Driver) DeleteMessage(ctx context.Context, queue, id string) error {
	if err := d.settler.flush(ctx); err != nil {
		return d.wrapErr(err)
	}
	var deleted, held int64
	err := d.pool.QueryRow(ctx, `
WITH d AS (
    DELETE FROM `+d.q.messages+` WHERE id = $1 AND ($2 = '' OR queue_name = $2) AND status = 'pending'
    RETURNING 1
)
SELECT (SELECT count(*) FROM d),
       (SELECT count(*) FROM `+d.q.messages+` WHERE id = $1 AND ($2 = '' OR queue_name = $2) AND status = 'processing')`,
		id, queue).Scan(&deleted, &held)
	switch {
	case err != nil:
		return d.wrapErr(err)
	case deleted > 0:
		return nil
	case held > 0:
		return fmt.Errorf("message %s: %w: a consumer holds it", id, pubsub.ErrMessageInFlight)
	}
	return fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
}
