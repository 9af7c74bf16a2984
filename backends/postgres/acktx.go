package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Effectively-once handling. A handler that keeps its effects in the same
// database can commit them together with the acknowledgement of the
// message that caused them: AckTx deletes the message's row inside the
// handler's transaction, so a crash before the commit leaves neither (the
// message comes back when its lease runs out, the effects were never
// written) and a crash after leaves both (the message is gone). The ack
// the router sends afterwards deletes nothing, and a nack or dead letter
// of a message acknowledged this way does nothing either.
//
// The row's lease guards the delete: when the lease was lost (the handler
// ran longer than the lease and the backend could not extend it, so
// another consumer may have the message), AckTx fails with ErrLeaseLost
// and the transaction must be rolled back. From AckTx to the commit the
// message's row is locked: lease extension of the consumer's other
// messages waits for it, so call AckTx last, just before Commit
// (HandleInTx does).

// ErrLeaseLost is returned by AckTx when the consumer no longer holds the
// message's lease: roll the transaction back, the message may be handled
// elsewhere.
var ErrLeaseLost = errors.New("postgres: the message's lease was lost")

// AckTx acknowledges msg, delivered by this backend, inside tx: the
// message is gone if and only if tx commits. tx must be on the backend's
// database. It fails with ErrLeaseLost when the lease was lost, and with
// pubsub.ErrInvalidArgument for a message this backend did not deliver.
func (d *Driver) AckTx(ctx context.Context, tx pgx.Tx, msg *message.Message) error {
	r := pubsub.ReceivedOf(msg)
	var l *lease
	if r != nil {
		l, _ = r.AckID.(*lease)
	}
	if l == nil || !strings.HasPrefix(l.owner, d.instance+":") {
		return fmt.Errorf("ack message %s in a transaction: %w: it was not delivered by this backend", msg.UUID, pubsub.ErrInvalidArgument)
	}
	queue := pubsub.DeliveryOf(msg).Queue
	tag, err := tx.Exec(ctx, d.q.ackTx, l.seq, l.owner)
	if err != nil {
		return fmt.Errorf("ack message %s of queue %s in a transaction: %w", msg.UUID, queue, d.wrapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("ack message %s of queue %s in a transaction: %w", msg.UUID, queue, ErrLeaseLost)
	}
	return nil
}

// HandleInTx runs fn in a transaction on the backend's pool, acknowledges
// msg in it (AckTx) and commits: fn's writes and the ack are committed
// together or not at all. An error of fn rolls back and is returned (the
// handler returns it, and the message is retried as usual); so is
// ErrLeaseLost.
func (d *Driver) HandleInTx(ctx context.Context, msg *message.Message, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return d.AckTx(ctx, tx, msg)
	})
}

// AckTx acknowledges msg inside tx on a backend opened with a postgres://
// URL (see Driver.AckTx). It fails with pubsub.ErrUnsupported on other
// backends.
func AckTx(ctx context.Context, b *pubsub.Backend, tx pgx.Tx, msg *message.Message) error {
	d, ok := b.Driver().(*Driver)
	if !ok {
		return fmt.Errorf("ack message %s in a transaction: %w: %s is not PostgreSQL", msg.UUID, pubsub.ErrUnsupported, b.Scheme())
	}
	return d.AckTx(ctx, tx, msg)
}

// HandleInTx runs fn and acknowledges msg in one transaction on a backend
// opened with a postgres:// URL (see Driver.HandleInTx). It fails with
// pubsub.ErrUnsupported on other backends.
func HandleInTx(ctx context.Context, b *pubsub.Backend, msg *message.Message, fn func(ctx context.Context, tx pgx.Tx) error) error {
	d, ok := b.Driver().(*Driver)
	if !ok {
		return fmt.Errorf("handle message %s in a transaction: %w: %s is not PostgreSQL", msg.UUID, pubsub.ErrUnsupported, b.Scheme())
	}
	return d.HandleInTx(ctx, msg, fn)
}
