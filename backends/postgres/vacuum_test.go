package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// churn publishes n messages to queue and consumes them, each claimed
// and deleted: about 2n dead tuples in the messages table.
func churn(t *testing.T, b *pubsub.Backend, queue string, n int) {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(uuid.NewString(), []byte(fmt.Sprint(i)))
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	for range n {
		select {
		case m := <-ch:
			m.Ack()
		case <-ctx.Done():
			t.Fatal("not every message arrived")
		}
	}
}

// tableStats reads the messages table's manual vacuum count and dead
// tuples from the statistics.
func tableStats(t *testing.T, conn *pgx.Conn) (vacuums, dead int64) {
	t.Helper()
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'quantum_flow_messages'`).Scan(&vacuums, &dead))
	return vacuums, dead
}

// pollStats calls check with the messages table's vacuum count and dead
// tuples every 200 ms until it returns true (pollStats then does) or d
// passed (false), in the test's goroutine. Not require.Eventually or
// Never: they run the condition in a goroutine of their own, which can
// still be reading from conn when they have returned and the test closed
// conn (a CI failure: "conn closed" after Never's 8 s).
func pollStats(t *testing.T, conn *pgx.Conn, d time.Duration, check func(vacuums, dead int64) bool) bool {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		if check(tableStats(t, conn)) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestVacuumsMessagesTable: a consuming backend vacuums the messages
// table once it holds vacuum_threshold dead tuples (a manual vacuum:
// autovacuum counts apart), and not with vacuum_threshold=0.
func TestVacuumsMessagesTable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		threshold string
		vacuums   bool
	}{{"500", true}, {"0", false}} {
		t.Run("threshold="+c.threshold, func(t *testing.T) {
			t.Parallel()
			db := pgtest.Database(t)
			b := open(t, withParams(db, "vacuum_threshold", c.threshold))
			conn, err := pgx.Connect(context.Background(), db)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			churn(t, b, "q", 2000)
			if !c.vacuums {
				require.False(t, pollStats(t, conn, 8*time.Second, func(v, _ int64) bool { return v > 0 }), "vacuumed with vacuum_threshold=0")
				return
			}
			require.True(t, pollStats(t, conn, time.Minute, func(v, dead int64) bool { return v > 0 && dead < 500 }),
				"no vacuum brought the dead tuples under 500")
		})
	}
}

// TestVacuumWaitsOutHeldTransaction: while a transaction older than the
// dead tuples holds them, the backend vacuums once (at most: autovacuum may
// have been at it), finds it removed little, and not again while that
// transaction is open; once it ends, a vacuum removes them.
func TestVacuumWaitsOutHeldTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, withParams(db, "vacuum_threshold", "500"))
	conn, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer conn.Close(ctx)
	hold, err := pgx.Connect(ctx, db)
	require.NoError(t, err)
	defer hold.Close(ctx)
	tx, err := hold.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT txid_current()`)
	require.NoError(t, err)

	churn(t, b, "q", 2000)
	time.Sleep(12 * time.Second) // six checks
	vacuums, dead := tableStats(t, conn)
	require.LessOrEqual(t, vacuums, int64(1), "vacuums while held back")
	require.GreaterOrEqual(t, dead, int64(2000), "dead tuples a held-back vacuum cannot remove")

	require.NoError(t, tx.Rollback(ctx))
	require.True(t, pollStats(t, conn, time.Minute, func(v, dead int64) bool { return v > vacuums && dead < 500 }),
		"vacuumed once the transaction ended")
}
