package bench

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// Kinds of subject.
const (
	KindBackend  = "backend"
	KindBaseline = "baseline"
)

// Subject names.
const (
	SubjectMem          = "mem"
	SubjectPostgres     = "postgres"
	SubjectPostgresSync = "postgres_sync_acks"
	SubjectNATS         = "nats"
	SubjectNATSSync     = "nats_sync"
	SubjectGoChannel    = "gochannel"
	SubjectPgx          = "pgx"
	SubjectWatermillSQL = "watermill_sql"
	// SubjectWatermillSQLQueue is watermill-sql tuned for a work queue: its
	// queue schema with DeleteOnAck.
	SubjectWatermillSQLQueue = "watermill_sql_queue"
	SubjectJetStream         = "jetstream"
	SubjectJetStreamSync     = "jetstream_sync"
	// SubjectJetStreamMsgID is the jetstream floor publishing with a
	// Nats-Msg-Id on every message, as the NATS backend does (publish
	// scenarios only).
	SubjectJetStreamMsgID = "jetstream_msgid"
)

// SubjectInfo describes a measured subject in the report.
type SubjectInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Durability  string `json:"durability"`
}

// subjectDef knows how to open a subject for a run.
type subjectDef struct {
	SubjectInfo
	// needs names the server the subject runs against: "postgres",
	// "nats", "nats_sync" or "" (in process).
	needs string
	// maxWorkers caps concurrent subscriptions (GoChannel fans out: one).
	maxWorkers int
	// openURL returns the URL a backend subject is opened with.
	openURL func(ctx context.Context, e *env) (string, error)
	// openRaw opens a baseline subject.
	openRaw func(ctx context.Context, e *env) (subject, error)
}

const (
	durPostgres        = "PostgreSQL, fsync=on, synchronous_commit=on: a commit survives a machine crash"
	durPostgresBackend = "PostgreSQL, fsync=on: a publish is fsynced before it returns; claims and acks commit asynchronously (backend default: a database crash may redeliver the last acked messages)"
	durPostgresSync    = "PostgreSQL, fsync=on: publishes, claims and acks all fsynced before they complete (sync_acks=true), as the raw pgx loop does"
	durNATS            = "JetStream file store, server default sync: written to the OS at once, fsync every 2 min (survives a process crash, not a machine crash)"
	durNATSSync        = "JetStream file store, SyncAlways: fsync on every write (survives a machine crash)"
	durMemory          = "none: in process memory"
)

var subjectDefs = []*subjectDef{
	{
		SubjectInfo: SubjectInfo{SubjectMem, KindBackend, "QuantumFlow in-memory backend (mem://)", durMemory},
		openURL: func(_ context.Context, e *env) (string, error) {
			return fmt.Sprintf("mem://bench%d", e.seq.Add(1)), nil
		},
	},
	{
		SubjectInfo: SubjectInfo{SubjectPostgres, KindBackend, "QuantumFlow PostgreSQL backend (postgres://) with sync_acks=false: acks committed asynchronously", durPostgresBackend},
		needs:       "postgres",
		openURL: func(ctx context.Context, e *env) (string, error) {
			u, err := e.database(ctx, SubjectPostgres)
			if err != nil {
				return "", err
			}
			// Acks committed asynchronously; postgres_sync_acks (the
			// backend's default) is the other setting.
			return withQuery(u, "sync_acks", "false")
		},
	},
	{
		SubjectInfo: SubjectInfo{SubjectPostgresSync, KindBackend, "QuantumFlow PostgreSQL backend with its default sync_acks=true (equal durability to the raw pgx loop)", durPostgresSync},
		needs:       "postgres",
		openURL: func(ctx context.Context, e *env) (string, error) {
			u, err := e.database(ctx, SubjectPostgresSync)
			if err != nil {
				return "", err
			}
			return withQuery(u, "sync_acks", "true")
		},
	},
	{
		SubjectInfo: SubjectInfo{SubjectNATS, KindBackend, "QuantumFlow NATS JetStream backend (nats://), embedded server", durNATS},
		needs:       "nats",
		openURL:     func(_ context.Context, e *env) (string, error) { return e.backendNATSURL(false) },
	},
	{
		SubjectInfo: SubjectInfo{SubjectNATSSync, KindBackend, "QuantumFlow NATS JetStream backend (nats://), embedded server with SyncAlways", durNATSSync},
		needs:       "nats_sync",
		openURL:     func(_ context.Context, e *env) (string, error) { return e.backendNATSURL(true) },
	},
	{
		SubjectInfo: SubjectInfo{SubjectGoChannel, KindBaseline, "Watermill GoChannel (in-process fan-out, one subscription)", durMemory},
		maxWorkers:  1,
		openRaw:     func(context.Context, *env) (subject, error) { return openGoChannel(), nil },
	},
	{
		SubjectInfo: SubjectInfo{SubjectPgx, KindBaseline, "raw pgx on a table shaped like quantum_flow_messages: INSERT 1 row/tx, COPY 100 rows/tx, SKIP LOCKED claim-100 + delete", durPostgres},
		needs:       "postgres",
		openRaw:     withDatabase(SubjectPgx, func(ctx context.Context, u string) (subject, error) { return openPgxRaw(ctx, u) }),
	},
	{
		SubjectInfo: SubjectInfo{SubjectWatermillSQL, KindBaseline, "stock watermill-sql v4.1.2 as shipped: its publisher and subscriber with the default schema and offsets adapter (1 s poll)", durPostgres},
		needs:       "postgres",
		openRaw:     withDatabase(SubjectWatermillSQL, func(ctx context.Context, u string) (subject, error) { return openWatermillSQL(ctx, u, false) }),
	},
	{
		SubjectInfo: SubjectInfo{SubjectWatermillSQLQueue, KindBaseline, "watermill-sql v4.1.2 at its fastest for a queue: queue schema, DeleteOnAck (batches of 100 claimed and deleted in one transaction, 1 s poll)", durPostgres},
		needs:       "postgres",
		openRaw:     withDatabase(SubjectWatermillSQLQueue, func(ctx context.Context, u string) (subject, error) { return openWatermillSQL(ctx, u, true) }),
	},
	{
		SubjectInfo: SubjectInfo{SubjectJetStream, KindBaseline, "raw nats.go jetstream: sync Publish, PublishAsync batches, pull Consume + Ack", durNATS},
		needs:       "nats",
		openRaw: func(ctx context.Context, e *env) (subject, error) {
			u, err := e.natsURL(false)
			if err != nil {
				return nil, err
			}
			return openJetStreamRaw(ctx, u, false)
		},
	},
	{
		SubjectInfo: SubjectInfo{SubjectJetStreamMsgID, KindBaseline, "raw nats.go jetstream publishing with a unique Nats-Msg-Id per message (the server's duplicate check, as the backend's publishes pay it); publish scenarios only", durNATS},
		needs:       "nats",
		openRaw: func(ctx context.Context, e *env) (subject, error) {
			u, err := e.natsURL(false)
			if err != nil {
				return nil, err
			}
			return openJetStreamRaw(ctx, u, true)
		},
	},
	{
		SubjectInfo: SubjectInfo{SubjectJetStreamSync, KindBaseline, "raw nats.go jetstream against the SyncAlways server", durNATSSync},
		needs:       "nats_sync",
		openRaw: func(ctx context.Context, e *env) (subject, error) {
			u, err := e.natsURL(true)
			if err != nil {
				return nil, err
			}
			return openJetStreamRaw(ctx, u, false)
		},
	},
}

func subjectByName(name string) *subjectDef {
	for _, d := range subjectDefs {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// instance is an opened subject; for backends also the backend itself,
// which the router scenarios need.
type instance struct {
	subject
	backend *pubsub.Backend
	// maxWorkers caps concurrent subscriptions; 0 means no cap.
	maxWorkers int
	// url is the URL a backend was opened with (empty for a baseline).
	url string
}

func (d *subjectDef) open(ctx context.Context, e *env) (*instance, error) {
	if d.openRaw != nil {
		s, err := d.openRaw(ctx, e)
		if err != nil {
			return nil, err
		}
		return &instance{subject: s, maxWorkers: d.maxWorkers}, nil
	}
	u, err := d.openURL(ctx, e)
	if err != nil {
		return nil, err
	}
	b, err := pubsub.Open(ctx, u, pubsub.WithLogger(e.logger))
	if err != nil {
		return nil, err
	}
	if err := b.Init(ctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("init %s: %w", b, err)
	}
	return &instance{subject: backendSubject(b), backend: b, url: u}, nil
}

// pgDriver is what the scenarios that read the PostgreSQL backend's table
// (steady, vacuum, inflight) need of its driver.
type pgDriver interface {
	Pool() *pgxpool.Pool
	Schema() string
}

// backendSubject measures a backend through its public API only.
func backendSubject(b *pubsub.Backend) subject {
	return &watermillSubject{
		pub: b.Publisher(),
		sub: b.Subscriber(),
		declare: func(ctx context.Context, queue string) error {
			return b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, MaxRetries: topology.DefaultMaxRetries, RetryDelay: topology.DefaultRetryDelay})
		},
		closeFn: b.Close,
	}
}

// withQuery adds a query parameter to a URL.
func withQuery(raw, key, value string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// withDatabase opens a PostgreSQL baseline on a database of its own.
func withDatabase(name string, open func(ctx context.Context, dbURL string) (subject, error)) func(context.Context, *env) (subject, error) {
	return func(ctx context.Context, e *env) (subject, error) {
		u, err := e.database(ctx, name)
		if err != nil {
			return nil, err
		}
		return open(ctx, u)
	}
}
