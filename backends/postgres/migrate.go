package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationsTable records applied migrations. It is not called
// schema_migrations so that it cannot collide with the application's own
// migration tool when QuantumFlow shares its schema.
const migrationsTable = "quantum_flow_schema_migrations"

// migration is one versioned SQL file, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the migrations of fsys (files migrations/NNNN_*.sql)
// in version order.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	paths, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, p := range paths {
		base := path.Base(p)
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("two migrations with version %d", out[i].version)
		}
	}
	return out, nil
}

// migrate applies the migrations of fsys that schema lacks. Everything
// happens in one transaction that first takes an advisory lock per schema:
// concurrent runs (several processes running init at once) wait for each
// other and the later ones find nothing to do, and a failing migration
// rolls back, leaving the schema as it was. It returns the versions
// applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, fsys fs.FS) ([]int, error) {
	migs, err := loadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "quantum_flow_migrate:"+schema); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	ident := pgx.Identifier{schema}.Sanitize()
	// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
	// the schema exists: a role that owns only its schema (made for it by
	// an administrator) has no such right, so look first.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up schema %s: %w", schema, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
			return nil, fmt.Errorf("create schema %s: %w", schema, err)
		}
	}
	table := ident + "." + migrationsTable
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("create %s: %w", migrationsTable, err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+table).Scan(&current); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	// Unqualified names in the migration files land in the schema.
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, ident); err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range migs {
		if m.version <= current {
			continue
		}
		// No arguments: pgx sends the file with the simple protocol, which
		// allows several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return nil, fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
		}
		applied = append(applied, m.version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit migrations: %w", err)
	}
	return applied, nil
}
