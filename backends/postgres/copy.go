package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Large payloads go in with COPY. The insert of arrays makes the server
// build an array of the payloads and take it apart again, which costs in
// proportion to their bytes; COPY reads each row as it comes. With 4
// publishers of 100 messages per call, COPY published 4 KiB payloads at
// 0.74-0.84x raw COPY where the insert ran at 0.58-0.76x (seven
// interleaved pairs of runs, bench/ publish_batch); with 256 B payloads it
// gained nothing (0.59-0.66x against 0.56-0.75x), and its extra round
// trips (the queue's priority read before it, the copy's start; a BEGIN
// and a COMMIT when the copy shares its transaction) make it the slower
// path for small groups.
const (
	copyMinRows    = 16
	copyMinPayload = 1 << 10 // mean payload bytes: measured at 256 B and 4 KiB, the threshold lies between
)

// copyable reports whether r goes in with COPY: enough rows of large
// enough payloads, none delayed (available_at is the server's now(),
// which COPY cannot compute) and none with a dedup key (the dedup insert
// decides which rows go in).
func (r *rows) copyable() bool {
	if r.len() < copyMinRows || r.availableAt != nil || r.keys != nil {
		return false
	}
	bytes := 0
	for _, p := range r.payloads {
		bytes += len(p)
	}
	return bytes >= r.len()*copyMinPayload
}

// copyRows are rows to COPY, with their queue's priority for those
// without one of their own, read in the same transaction as the insert
// reads it in its statement.
type copyRows struct {
	rows     *rows
	priority int32
}

// copyColumns are the columns COPY fills, the others taking their
// defaults; metadata, the last, is left out (its default, {}) when no row
// has any.
var copyColumns = []string{"id", "queue_name", "payload", "priority", "metadata"}

// copyIn copies each of copies into the messages table on conn, in its
// transaction.
func (d *Driver) copyIn(ctx context.Context, conn *pgx.Conn, copies []*copyRows) error {
	table := pgx.Identifier{d.cfg.schema, "quantum_flow_messages"}
	for _, c := range copies {
		r := c.rows
		withMetadata := slices.ContainsFunc(r.metadata, func(m string) bool { return m != "{}" })
		cols := copyColumns
		if !withMetadata {
			cols = cols[:len(cols)-1]
		}
		_, err := conn.CopyFrom(ctx, table, cols, pgx.CopyFromSlice(r.len(), func(i int) ([]any, error) {
			prio := r.priorities[i]
			if prio == noPriority {
				prio = c.priority
			}
			row := append(make([]any, 0, len(cols)), r.ids[i], r.queue, r.payloads[i], prio)
			if withMetadata {
				row = append(row, r.metadata[i])
			}
			return row, nil
		}))
		if err != nil {
			return err
		}
	}
	return nil
}
