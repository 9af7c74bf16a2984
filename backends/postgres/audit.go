package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

var _ pubsub.AuditStore = (*Driver)(nil)

// AppendAudit inserts e into quantum_flow_audit.
func (d *Driver) AppendAudit(ctx context.Context, e pubsub.AuditEntry) error {
	_, err := d.pool.Exec(ctx, `
INSERT INTO `+d.q.audit+` (at, role, remote, action, queue_name, count, detail, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.At, e.Role, e.Remote, e.Action, e.Queue, int32(min(e.Count, 1<<31-1)), e.Detail, e.Error)
	return d.wrapErr(err)
}

// ListAudit returns the last limit rows, newest first.
func (d *Driver) ListAudit(ctx context.Context, limit int) ([]pubsub.AuditEntry, error) {
	rows, err := d.pool.Query(ctx, `
SELECT at, role, remote, action, queue_name, count, detail, error FROM `+d.q.audit+`
ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pubsub.AuditEntry, error) {
		var e pubsub.AuditEntry
		var n int32
		err := r.Scan(&e.At, &e.Role, &e.Remote, &e.Action, &e.Queue, &n, &e.Detail, &e.Error)
		e.Count = int(n)
		e.At = e.At.UTC()
		return e, err
	})
	return out, d.wrapErr(err)
}
