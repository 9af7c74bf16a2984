package postgres

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
)

func TestMigrationsAreVersionedAndTransactional(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Database(t))
	require.NoError(t, err)
	defer pool.Close()

	v1 := fstest.MapFS{
		"migrations/0001_first.sql": {Data: []byte(`CREATE TABLE one (v int); INSERT INTO one VALUES (1);`)},
	}
	applied, err := migrate(ctx, pool, "mig", v1)
	require.NoError(t, err)
	require.Equal(t, []int{1}, applied)
	applied, err = migrate(ctx, pool, "mig", v1)
	require.NoError(t, err)
	require.Empty(t, applied, "nothing to do the second time")

	// A release with two new migrations, the second failing half way: the
	// schema stays at version 1, without the tables the failed run made.
	broken := fstest.MapFS{
		"migrations/0001_first.sql":  v1["migrations/0001_first.sql"],
		"migrations/0002_second.sql": {Data: []byte(`CREATE TABLE two (v int);`)},
		"migrations/0003_third.sql":  {Data: []byte(`CREATE TABLE three (v int); INSERT INTO three VALUES ('not a number');`)},
	}
	_, err = migrate(ctx, pool, "mig", broken)
	require.ErrorContains(t, err, "0003_third")
	var version int
	require.NoError(t, pool.QueryRow(ctx, `SELECT max(version) FROM mig.quantum_flow_schema_migrations`).Scan(&version))
	require.Equal(t, 1, version)
	var tables []string
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'mig' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.Equal(t, []string{"one", "quantum_flow_schema_migrations"}, tables)

	// Fixed: both apply.
	fixed := fstest.MapFS{
		"migrations/0001_first.sql":  v1["migrations/0001_first.sql"],
		"migrations/0002_second.sql": broken["migrations/0002_second.sql"],
		"migrations/0003_third.sql":  {Data: []byte(`CREATE TABLE three (v int);`)},
	}
	applied, err = migrate(ctx, pool, "mig", fixed)
	require.NoError(t, err)
	require.Equal(t, []int{2, 3}, applied)
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	t.Parallel()
	migs, err := loadMigrations(migrationFiles)
	require.NoError(t, err)
	require.NotEmpty(t, migs)
	for i, m := range migs {
		require.Equal(t, i+1, m.version, "migrations are numbered 1, 2, ... without gaps")
	}
}

// A claim must stay a heap-only update: no index of the messages table may
// cover the columns it changes, in its key, its expressions or its
// predicate (see migration 0002).
func TestClaimChangesNoIndexedColumn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.Database(t))
	require.NoError(t, err)
	defer pool.Close()
	_, err = migrate(ctx, pool, "hot", migrationFiles)
	require.NoError(t, err)

	rows, err := pool.Query(ctx, `
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'hot.quantum_flow_messages'::regclass`)
	require.NoError(t, err)
	defs := map[string]string{}
	for rows.Next() {
		var name, def string
		require.NoError(t, rows.Scan(&name, &def))
		defs[name] = def
	}
	require.NoError(t, rows.Err())
	require.Contains(t, defs, "quantum_flow_messages_ready_idx", "the claim's index")
	require.Contains(t, defs, "quantum_flow_messages_parked_idx", "the index of parked leases")
	for name, def := range defs {
		for _, col := range []string{"status", "locked_until", "locked_by"} {
			require.NotContains(t, def, col, "index %s", name)
		}
	}
	var opts []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT reloptions FROM pg_class WHERE oid = 'hot.quantum_flow_messages'::regclass`).Scan(&opts))
	require.Contains(t, opts, "fillfactor=50")
}
