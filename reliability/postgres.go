package reliability

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// terminateAll terminates every client connection to the database of
// dbURL, through the server's maintenance database at adminURL, and
// returns how many it terminated.
func terminateAll(ctx context.Context, adminURL, dbURL string) (int, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
		strings.TrimPrefix(u.Path, "/")).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pg_terminate_backend: %w", err)
	}
	return n, nil
}

// deadTuples is the database's dead tuples in its user tables, as the
// statistics last counted them.
func deadTuples(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables`).Scan(&n)
	return n, err
}

// holdSnapshot opens a transaction that holds its snapshot (and so the
// database's xmin horizon: vacuum cannot remove rows deleted after it)
// until the returned function ends it.
func holdSnapshot(ctx context.Context, dbURL string) (end func(), err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err == nil {
		// The snapshot is taken by the first query, and txid_current
		// gives the transaction an id too.
		_, err = tx.Exec(ctx, `SELECT txid_current(), count(*) FROM pg_class`)
	}
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tx.Rollback(c)
		_ = conn.Close(c)
	}, nil
}
