package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

var _ pubsub.InstanceStore = (*Driver)(nil)

const instanceColumns = `service, id, host, pid, version, nonce, started_at, heartbeat_at, consumers`

// PutInstance records inst in quantum_flow_instances, in one statement,
// unless another process (another nonce) has a heartbeat there after
// liveAfter: then it returns that process's record and ErrInstanceTaken.
func (d *Driver) PutInstance(ctx context.Context, inst pubsub.Instance, liveAfter time.Time) (pubsub.Instance, error) {
	consumers, _ := json.Marshal(inst.Consumers) // plain fields always marshal
	if inst.Consumers == nil {
		consumers = []byte("[]")
	}
	for {
		tag, err := d.pool.Exec(ctx, `
INSERT INTO `+d.q.instances+` AS i (`+instanceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (service, id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version,
    nonce = EXCLUDED.nonce, started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at,
    consumers = EXCLUDED.consumers
WHERE i.nonce = EXCLUDED.nonce OR i.heartbeat_at <= $10`,
			inst.Service, inst.ID, pgText(inst.Host), int32(inst.PID), pgText(inst.Version), inst.Nonce,
			inst.StartedAt, inst.HeartbeatAt, string(consumers), liveAfter) // a string: []byte is bytea in exec mode
		if err != nil {
			return pubsub.Instance{}, d.wrapErr(err)
		}
		if tag.RowsAffected() == 1 {
			return pubsub.Instance{}, nil
		}
		rows, err := d.pool.Query(ctx, `SELECT `+instanceColumns+` FROM `+d.q.instances+` WHERE service = $1 AND id = $2`, inst.Service, inst.ID)
		if err != nil {
			return pubsub.Instance{}, d.wrapErr(err)
		}
		other, err := pgx.CollectExactlyOneRow(rows, scanInstance)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // deregistered meanwhile: try again
		}
		if err != nil {
			return pubsub.Instance{}, d.wrapErr(err)
		}
		return other, pubsub.ErrInstanceTaken
	}
}

func scanInstance(r pgx.CollectableRow) (pubsub.Instance, error) {
	var inst pubsub.Instance
	var pid int32
	var consumers []byte
	if err := r.Scan(&inst.Service, &inst.ID, &inst.Host, &pid, &inst.Version, &inst.Nonce, &inst.StartedAt, &inst.HeartbeatAt, &consumers); err != nil {
		return inst, err
	}
	inst.PID = int(pid)
	if len(consumers) > 2 {
		if err := json.Unmarshal(consumers, &inst.Consumers); err != nil {
			return inst, err
		}
	}
	return inst, nil
}

// ListInstances returns every record, by service, then id.
func (d *Driver) ListInstances(ctx context.Context) ([]pubsub.Instance, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+instanceColumns+` FROM `+d.q.instances+` ORDER BY service, id`)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	out, err := pgx.CollectRows(rows, scanInstance)
	return out, d.wrapErr(err)
}

// DeleteInstance deletes the record of (service, id).
func (d *Driver) DeleteInstance(ctx context.Context, service, id string) error {
	_, err := d.pool.Exec(ctx, `DELETE FROM `+d.q.instances+` WHERE service = $1 AND id = $2`, service, id)
	return d.wrapErr(err)
}

// PutLatest keeps msg as queue's latest broadcast message.
func (d *Driver) PutLatest(ctx context.Context, queue string, msg pubsub.LatestMessage) error {
	md, err := json.Marshal(msg.Metadata)
	if err != nil || msg.Metadata == nil {
		md = []byte("{}")
	}
	payload := msg.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err = d.pool.Exec(ctx, `
INSERT INTO `+d.q.latest+` (queue_name, id, payload, metadata, published_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (queue_name) DO UPDATE SET id = EXCLUDED.id, payload = EXCLUDED.payload, metadata = EXCLUDED.metadata,
    published_at = EXCLUDED.published_at`, queue, msg.ID, payload, string(md), msg.PublishedAt)
	return d.wrapErr(err)
}

// Latest returns queue's latest broadcast message; false when none.
func (d *Driver) Latest(ctx context.Context, queue string) (pubsub.LatestMessage, bool, error) {
	var m pubsub.LatestMessage
	var md []byte
	err := d.pool.QueryRow(ctx, `SELECT id, payload, metadata, published_at FROM `+d.q.latest+` WHERE queue_name = $1`, queue).
		Scan(&m.ID, &m.Payload, &md, &m.PublishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, d.wrapErr(err)
	}
	return m, true, unmarshalMetadata(md, &m.Metadata)
}
