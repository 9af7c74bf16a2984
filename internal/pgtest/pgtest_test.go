package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabaseIsFreshAndDurable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u1 := pgtest.Database(t)
	u2 := pgtest.Database(t)
	require.NotEqual(t, u1, u2)

	conn, err := pgx.Connect(ctx, u1)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n))
	require.Zero(t, n, "a new database has no tables")
	var fsync, maxConns string
	require.NoError(t, conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('max_connections')`).Scan(&fsync, &maxConns))
	require.Equal(t, "on", fsync, "benchmarks and tests measure durable commits")
	if !pgtest.Shared(t).External() {
		require.Equal(t, "500", maxConns)
	}
}

func TestRestartKeepsCommittedData(t *testing.T) {
	// Not parallel: it restarts the server every other test uses.
	c := pgtest.Shared(t)
	if c.External() {
		t.Skip("cannot restart an external server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u := pgtest.Database(t)
	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (42)`)
	require.NoError(t, err)

	require.NoError(t, c.Restart(ctx))
	require.Error(t, conn.Ping(ctx), "the old connection is gone")
	conn.Close(ctx)

	require.NoError(t, c.Kill(ctx))
	conn, err = pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v int
	require.NoError(t, conn.QueryRow(ctx, `SELECT v FROM t`).Scan(&v))
	require.Equal(t, 42, v)
}

func TestStopIsIdempotent(t *testing.T) {
	t.Parallel()
	if pgtest.Shared(t).External() {
		t.Skip("starts its own server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgtest.Start(ctx)
	require.NoError(t, err)
	dir := c.Dir()
	require.DirExists(t, dir)
	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop())
	require.NoDirExists(t, dir)
	_, err = pgx.Connect(ctx, c.URL())
	require.Error(t, err)
}
