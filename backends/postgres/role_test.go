package postgres_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestConformanceSchemaOwnerRole runs the suite as a role that owns only
// its own schema: no superuser, no CREATE on the database, nothing in
// public — the least a deployment must grant (docs/postgres.md). Init
// creates the tables in that schema, owned by that role.
func TestConformanceSchemaOwnerRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgtest.Database(t)
	u, err := url.Parse(admin)
	require.NoError(t, err)
	db := u.Path[1:]
	role := db + "_app" // roles are per cluster: one per test database
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`,
		`REVOKE ALL ON DATABASE ` + db + ` FROM PUBLIC`,
		`GRANT CONNECT, TEMPORARY ON DATABASE ` + db + ` TO ` + role,
		`REVOKE ALL ON SCHEMA public FROM PUBLIC`,
		`CREATE SCHEMA qf_app AUTHORIZATION ` + role,
	} {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), `DROP SCHEMA qf_app CASCADE`)
			_, _ = c.Exec(context.Background(), `DROP OWNED BY `+role)
			_, _ = c.Exec(context.Background(), `DROP ROLE `+role)
			_ = c.Close(context.Background())
		}
	})
	u.User = url.User(role)
	app := withParams(u.String(), "schema", "qf_app")
	pubsubtest.Run(t, pubsubtest.Harness{
		Open: func(t *testing.T) *pubsub.Backend { return open(t, app) },
	})

	var foreign int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables
WHERE schemaname = 'qf_app' AND tableowner <> $1`, role).Scan(&foreign))
	require.Zero(t, foreign, "every table of the schema is the role's")
	var inPublic int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&inPublic))
	require.Zero(t, inPublic, "nothing in public")
}
