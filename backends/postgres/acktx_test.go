package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestAckTx: a handler's writes and the ack commit together; a rollback
// keeps the message; the router's ack afterwards does nothing; a lost
// lease refuses the ack.
func TestAckTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := pgtest.Database(t)
	db := withParams(base, "lease", "500ms")
	b := open(t, db)
	d := b.Driver().(*postgres.Driver)
	conn := connect(t, base)
	_, err := conn.Exec(ctx, `CREATE TABLE effects (msg_id text NOT NULL)`)
	require.NoError(t, err)
	const queue = "acktx"
	require.NoError(t, b.Publisher().Publish(queue, newMsg("a")))
	ch := subscribe(t, b, queue)

	// Rolled back: the effect is not written and the message stays.
	m := pubsubtest.Receive(t, ch)
	err = d.HandleInTx(ctx, m, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, m.UUID); err != nil {
			return err
		}
		return fmt.Errorf("handler failed")
	})
	require.ErrorContains(t, err, "handler failed")
	m.Nack()

	m = pubsubtest.Receive(t, ch)
	require.Equal(t, 2, pubsub.DeliveryOf(m).Attempt)
	require.NoError(t, d.HandleInTx(ctx, m, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, m.UUID)
		return err
	}))
	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	require.Zero(t, st.Pending+st.InFlight, "the message went with the commit, before the router's ack")
	m.Ack() // deletes nothing
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n))
	require.Equal(t, 1, n)

	// A message whose lease was taken over: AckTx refuses, nothing is
	// written.
	other := open(t, db)
	require.NoError(t, b.Publisher().Publish(queue, newMsg("b")))
	m = pubsubtest.Receive(t, ch)
	_, err = conn.Exec(ctx, `UPDATE quantum_flow_messages SET locked_by = 'someone else' WHERE id = $1`, m.UUID)
	require.NoError(t, err)
	err = postgres.HandleInTx(ctx, b, m, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO effects VALUES ($1)`, m.UUID)
		return err
	})
	require.ErrorIs(t, err, postgres.ErrLeaseLost)
	require.ErrorContains(t, err, "queue acktx")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM effects`).Scan(&n))
	require.Equal(t, 1, n, "the transaction of a lost lease is rolled back")

	// A message from elsewhere is refused.
	tx, err := d.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.ErrorIs(t, d.AckTx(ctx, tx, message.NewMessage("x", nil)), pubsub.ErrInvalidArgument)
	require.ErrorIs(t, other.Driver().(*postgres.Driver).AckTx(ctx, tx, m), pubsub.ErrInvalidArgument, "delivered by another backend")

	// Other backends have no transaction to ack in.
	mb, err := pubsub.Open(ctx, "mem://acktx")
	require.NoError(t, err)
	defer func() { _ = mb.Close() }()
	require.ErrorIs(t, postgres.AckTx(ctx, mb, tx, m), pubsub.ErrUnsupported)
	require.ErrorIs(t, postgres.HandleInTx(ctx, mb, m, nil), pubsub.ErrUnsupported)
}

// Environment of the child of TestHandleInTxSurvivesSIGKILL.
const envChildWorkers = "QF_PG_TEST_CHILD_WORKERS"

// childTxConsumer handles messages of a queue with HandleInTx, each adding
// its payload to the effects table, until it is killed.
func childTxConsumer() error {
	ctx := context.Background()
	b, err := pubsub.Open(ctx, os.Getenv(envChildURL))
	if err != nil {
		return err
	}
	workers, err := strconv.Atoi(os.Getenv(envChildWorkers))
	if err != nil {
		return err
	}
	d := b.Driver().(*postgres.Driver)
	errs := make(chan error, workers)
	for range workers {
		ch, err := b.Subscriber().Subscribe(ctx, os.Getenv(envChildQueue))
		if err != nil {
			return err
		}
		go func() {
			for m := range ch {
				err := d.HandleInTx(ctx, m, func(ctx context.Context, tx pgx.Tx) error {
					// The consumer process dies here, not the database:
					// its commits need not wait for the disk, and the
					// test runs ten times as many handlings in its time.
					if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO effects (msg_id, n) VALUES ($1, $2)`, m.UUID, string(m.Payload))
					return err
				})
				if err != nil {
					m.Nack()
					continue
				}
				m.Ack()
			}
			errs <- fmt.Errorf("subscription ended")
		}()
	}
	fmt.Println("READY")
	return <-errs
}

// TestHandleInTxSurvivesSIGKILL handles 10k messages with HandleInTx in
// consumer processes killed (SIGKILL) at random moments, one after the
// other, until the queue is empty: the effects table has each message's
// effect exactly once (it has no unique constraint that could hide a
// second one).
func TestHandleInTxSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := pgtest.Database(t)
	db := withParams(base, "lease", "1s")
	b := open(t, db)
	conn := connect(t, base)
	_, err := conn.Exec(ctx, `CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, msg_id text NOT NULL, n int NOT NULL)`)
	require.NoError(t, err)
	const queue, total = "effectively_once", 10_000
	for from := 0; from < total; from += 1000 {
		msgs := make([]*message.Message, 1000)
		for i := range msgs {
			msgs[i] = newMsg(strconv.Itoa(from + i))
		}
		require.NoError(t, b.Publisher().Publish(queue, msgs...))
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	remaining := func() int64 {
		st, err := b.Stats(ctx, queue)
		require.NoError(t, err)
		return st.Pending + st.InFlight + st.Scheduled
	}
	kills := 0
	// Bounded for a loaded machine running every package under -race at
	// once; a quiet one needs well under a minute.
	for deadline := time.Now().Add(12 * time.Minute); remaining() > 0; {
		require.True(t, time.Now().Before(deadline), "%d messages left after %d kills", remaining(), kills)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=txconsumer", envChildURL+"="+db, envChildQueue+"="+queue, envChildWorkers+"=4")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ready <- sc.Scan() && sc.Text() == "READY"
			_, _ = io.Copy(io.Discard, out)
		}()
		select {
		case ok := <-ready:
			require.True(t, ok, "the consumer process did not start")
		case <-time.After(30 * time.Second):
			t.Fatal("the consumer process did not start within 30s")
		}
		// Random moments of the handling: mid-claim, mid-transaction,
		// between a commit and the router's ack, mid-settlement.
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		kills++
	}
	t.Logf("%d consumer processes killed", kills)
	var rows, distinct, sum int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT msg_id), coalesce(sum(n), 0) FROM effects`).Scan(&rows, &distinct, &sum))
	require.EqualValues(t, total, distinct, "every message had its effect")
	require.EqualValues(t, total, rows, "no message had its effect twice")
	require.EqualValues(t, total*(total-1)/2, sum)
}
