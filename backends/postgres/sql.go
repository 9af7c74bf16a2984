package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// queries holds the SQL of the hot paths with the schema filled in, built
// once per backend.
type queries struct {
	messages, queues, dlq, instances, latest, paused, dedup, audit, holders string // qualified table names

	insert        string
	insertOne     string
	insertAt      string
	insertDedup   string
	queuePriority string
	expireDedup   string
	ensureQueues  string
	notify        string
	claim         string
	claimFrom     string
	ack           string
	ackTx         string
	requeue       string
	deadLetter    string
	extend        string
	reapParked    string
	reapAll       string
	heartbeat     string
	deadHolders   string
	dropHolders   string
	stopHolding   string
	sweep         string
	nextDue       string
	readyQueues   string
	vacuumStats   string
	vacuum        string
}

func newQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	q := queries{
		messages:  s + ".quantum_flow_messages",
		queues:    s + ".quantum_flow_queues",
		dlq:       s + ".quantum_flow_dlq",
		instances: s + ".quantum_flow_instances",
		latest:    s + ".quantum_flow_latest",
		paused:    s + ".quantum_flow_paused_queues",
		dedup:     s + ".quantum_flow_dedup",
		audit:     s + ".quantum_flow_audit",
		holders:   s + ".quantum_flow_lease_holders",
	}
	r := strings.NewReplacer("{messages}", q.messages, "{queues}", q.queues, "{dlq}", q.dlq, "{dedup}", q.dedup, "{holders}", q.holders)

	// One queue's messages, in the order given (seq, the last tie-breaker
	// of the delivery order, follows publish order). A message without a
	// priority of its own gets its queue's, looked up once per statement.
	q.insert = r.Replace(`
INSERT INTO {messages} (id, queue_name, payload, metadata, priority)
SELECT u.id, $1, u.payload, u.metadata::jsonb,
       coalesce(nullif(u.priority, -2147483648), (SELECT q.priority FROM {queues} q WHERE q.name = $1), 0)
FROM unnest($2::text[], $3::bytea[], $4::text[], $5::int4[]) AS u(id, payload, metadata, priority)`)

	// The same for one message: the server takes less time than for
	// arrays of one (54-58 against 66 µs, pg_stat_statements' mean in two
	// runs), which a lone publisher waits for every time.
	q.insertOne = r.Replace(`
INSERT INTO {messages} (id, queue_name, payload, metadata, priority)
VALUES ($2, $1, $3, $4::jsonb,
        coalesce(nullif($5::int4, -2147483648), (SELECT q.priority FROM {queues} q WHERE q.name = $1), 0))`)

	// The same with when each message becomes deliverable (delayed and
	// scheduled publishes; a time already past, or the zero time, is now),
	// used only for batches that carry one, so that the common insert
	// encodes no extra array.
	q.insertAt = r.Replace(`
INSERT INTO {messages} (id, queue_name, payload, metadata, priority, available_at)
SELECT u.id, $1, u.payload, u.metadata::jsonb,
       coalesce(nullif(u.priority, -2147483648), (SELECT q.priority FROM {queues} q WHERE q.name = $1), 0),
       greatest(u.available_at, now())
FROM unnest($2::text[], $3::bytea[], $4::text[], $5::int4[], $6::timestamptz[]) AS u(id, payload, metadata, priority, available_at)`)

	// The priority of a queue's messages without one of their own, for
	// COPY (which cannot look it up per statement as the inserts do).
	q.queuePriority = r.Replace(`SELECT coalesce((SELECT priority FROM {queues} WHERE name = $1), 0)`)

	// Queues used without a declaration, with their defaults (see
	// ensureArgs); a declared queue keeps its settings.
	q.ensureQueues = r.Replace(`
INSERT INTO {queues} (name, priority, max_retries, retry_delay_ms)
SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[], $4::int8[])
ON CONFLICT (name) DO NOTHING`)

	q.notify = `SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q`

	q.claimQueries(r)
	q.settleQueries(r)
	q.leaseQueries(r)
	q.dedupQueries(r)
	return q
}

// claimQueries fills in the claims' statements.
func (q *queries) claimQueries(r *strings.Replacer) {
	// The claim: the next messages of a queue in delivery order, skipping
	// rows other consumers are claiming right now, leased to this consumer.
	// It walks the queue index of unparked rows, skipping leased rows by
	// their status (slow ones are parked out of the index, see migration
	// 0007); it changes no indexed column, so that the update is heap-only
	// (see migration 0002). The rows are found by seq in the primary key rather
	// than joined: the plan is the same whatever the parameters, so it is
	// planned once per connection (see claimSettings), where the join's
	// plan depends on the LIMIT and was planned again for every claim.
	// It takes nothing unless its holder's ($5) heartbeat runs: a lease
	// of a holder that died is found and returned while its row lasts.
	// Empty metadata comes back as NULL: nothing to copy or decode for
	// most messages.
	const ready = `queue_name = $1 AND parked_until IS NULL AND status = 'pending' AND available_at <= now()
      AND EXISTS (SELECT 1 FROM {holders} WHERE holder = $5 AND alive_until > now())`
	const claim = `
UPDATE {messages} m
SET status = 'processing', locked_until = now() + $3 * interval '1 millisecond', locked_by = $4
WHERE m.seq = ANY(ARRAY(%s))
RETURNING m.seq, m.id, m.payload, nullif(m.metadata, '{}'::jsonb), m.priority, m.retry_count, m.created_at, m.first_failed_at`
	q.claim = r.Replace(fmt.Sprintf(claim, `
    SELECT seq FROM {messages}
    WHERE `+ready+`
    ORDER BY priority DESC, created_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED`))

	// The same from the queue's claim floor (see floor.go): rows of a
	// higher priority than the floor's ($6), rows of its priority created
	// from $7 on, rows of a lower priority, in this order, up to $2 in
	// all. Each is a range of the queue index of its own, so the dead
	// entries before the floor are not read.
	q.claimFrom = r.Replace(fmt.Sprintf(claim, `
    WITH hi AS (
        SELECT seq FROM {messages}
        WHERE `+ready+` AND priority > $6
        ORDER BY priority DESC, created_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED
    ), mid AS (
        SELECT seq FROM {messages}
        WHERE `+ready+` AND priority = $6 AND created_at >= $7
        ORDER BY priority DESC, created_at, seq LIMIT $2 - (SELECT count(*) FROM hi) FOR UPDATE SKIP LOCKED
    ), lo AS (
        SELECT seq FROM {messages}
        WHERE `+ready+` AND priority < $6
        ORDER BY priority DESC, created_at, seq LIMIT $2 - (SELECT count(*) FROM hi) - (SELECT count(*) FROM mid) FOR UPDATE SKIP LOCKED
    )
    SELECT seq FROM hi UNION ALL SELECT seq FROM mid UNION ALL SELECT seq FROM lo`))
}

// dedupQueries fills in the statements of publish-side deduplication
// (migration 0004).
func (q *queries) dedupQueries(r *strings.Replacer) {
	// The insert of a queue's messages when some carry a dedup key ($6,
	// '' for none); the insert above serves every other publish, so
	// messages without a key pay nothing for deduplication. Each key's
	// first message in the statement (k) claims the key: a new row, or
	// the row of an expired claim, taken over. A live claim is updated to
	// itself so that RETURNING yields the stored id even when another
	// transaction committed it after this statement's snapshot was taken
	// (the conflict waited for it). owner = $8, a token of this statement,
	// tells the claims made here. Messages go in when they have no key or
	// made a claim, in the order given; the result lists, by position
	// (1-based), every message not stored and the id stored for its key.
	// $9 is when each becomes deliverable, as in insertAt.
	q.insertDedup = r.Replace(`
WITH u AS (
    SELECT * FROM unnest($2::text[], $3::bytea[], $4::text[], $5::int4[], $6::text[], $9::timestamptz[]) WITH ORDINALITY
        AS u(id, payload, metadata, priority, dedup_key, available_at, ord)
), k AS (
    SELECT DISTINCT ON (dedup_key) dedup_key, id, ord FROM u WHERE dedup_key <> '' ORDER BY dedup_key, ord
), d AS (
    INSERT INTO {dedup} AS x (queue_name, dedup_key, id, expires_at, owner)
    SELECT $1, k.dedup_key, k.id,
           now() + coalesce((SELECT dedup_window_ms FROM {queues} WHERE name = $1), $7) * interval '1 millisecond', $8
    FROM k
    ON CONFLICT (queue_name, dedup_key) DO UPDATE
    SET id = CASE WHEN x.expires_at <= now() THEN EXCLUDED.id ELSE x.id END,
        owner = CASE WHEN x.expires_at <= now() THEN EXCLUDED.owner ELSE x.owner END,
        expires_at = CASE WHEN x.expires_at <= now() THEN EXCLUDED.expires_at ELSE x.expires_at END
    RETURNING x.dedup_key, x.id AS stored_id, x.owner = $8 AS claimed
), m AS (
    INSERT INTO {messages} (id, queue_name, payload, metadata, priority, available_at)
    SELECT u.id, $1, u.payload, u.metadata::jsonb,
           coalesce(nullif(u.priority, -2147483648), (SELECT q.priority FROM {queues} q WHERE q.name = $1), 0),
           greatest(u.available_at, now())
    FROM u
    WHERE u.dedup_key = '' OR u.ord IN (SELECT k.ord FROM k JOIN d ON d.dedup_key = k.dedup_key WHERE d.claimed)
    ORDER BY u.ord
)
SELECT u.ord, d.stored_id
FROM u JOIN d ON d.dedup_key = u.dedup_key JOIN k ON k.dedup_key = u.dedup_key
WHERE NOT d.claimed OR u.ord <> k.ord`)

	// Claims whose window ended, a batch at a time through the expiry
	// index; a publish of their key would take them over anyway, this
	// only keeps keys never published again from piling up.
	q.expireDedup = r.Replace(`
DELETE FROM {dedup} WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {dedup} WHERE expires_at < now() LIMIT 5000 FOR UPDATE SKIP LOCKED))`)
}

// settleQueries fills in the settlements' statements.
func (q *queries) settleQueries(r *strings.Replacer) {
	q.ack = r.Replace(`DELETE FROM {messages} WHERE seq = ANY($1::int8[])`)

	// An ack inside the handler's transaction (AckTx): only while this
	// consumer holds the lease, so that a lease lost to another consumer
	// deletes nothing and the handler's transaction is rolled back. The
	// engine's ack of the message afterwards deletes nothing.
	q.ackTx = r.Replace(`DELETE FROM {messages} WHERE seq = $1 AND locked_by = $2 AND status = 'processing'`)

	// Back to the queue: a nack (attempt counted, maybe delayed, error
	// kept), an interrupted delivery (counted) or a give-back (nothing
	// counted). Only the holder of the lease may do it.
	q.requeue = r.Replace(`
UPDATE {messages} m
SET status = 'pending', parked_until = NULL, locked_until = NULL, locked_by = NULL,
    available_at = now() + u.delay_ms * interval '1 millisecond',
    retry_count = m.retry_count + u.counted,
    last_error = coalesce(u.error, m.last_error),
    first_failed_at = CASE WHEN u.failed THEN coalesce(m.first_failed_at, now()) ELSE m.first_failed_at END,
    last_failed_at = CASE WHEN u.failed THEN now() ELSE m.last_failed_at END
FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int4[], $5::text[], $6::bool[])
     AS u(seq, locked_by, delay_ms, counted, error, failed)
WHERE m.seq = u.seq AND m.locked_by = u.locked_by`)

	// The move to the dead-letter queue: one statement, so a message is in
	// exactly one of the two tables at any time.
	q.deadLetter = r.Replace(`
WITH d AS (
    DELETE FROM {messages} m
    USING unnest($1::int8[], $2::text[], $3::text[], $4::text[]) AS u(seq, error, handler, service)
    WHERE m.seq = u.seq
    RETURNING m.id, m.queue_name, m.payload, m.metadata, m.priority, m.retry_count, m.created_at,
              m.first_failed_at, u.error, u.handler, u.service
)
INSERT INTO {dlq} (id, queue_name, payload, metadata, priority, error, attempts, handler, service,
                   first_failed_at, last_failed_at, message_created_at)
SELECT id, queue_name, payload, metadata, priority, error, retry_count + 1, handler, service,
       coalesce(first_failed_at, now()), now(), created_at
FROM d`)

}

// reapBatch is how many expired leases one reap statement returns.
const reapBatch = 1000

// leaseQueries fills in the statements about leases, their holders and
// due times.
func (q *queries) leaseQueries(r *strings.Replacer) {
	// An extension parks the rows it extends: a lease held this long is a
	// slow message, out of the claim's way from now on (migration 0007).
	q.extend = r.Replace(`
UPDATE {messages} m
SET locked_until = now() + $3 * interval '1 millisecond', parked_until = now() + $3 * interval '1 millisecond'
FROM unnest($1::int8[], $2::text[]) AS u(seq, locked_by)
WHERE m.seq = u.seq AND m.locked_by = u.locked_by AND m.status = 'processing'
RETURNING m.seq`)

	// Expired leases back to their queue, counted as a failed attempt: the
	// parked ones through their index, every one by reading the table. The
	// rows are found by seq in the primary key, as the claim's are: with
	// "seq IN (...)" the planner joined against a read of the whole table.
	// The parked ones are taken in expiry order: without it the planner,
	// misjudging how soon a read of the table would find a batch, read
	// the table rather than the parked leases' index.
	const reap = `
WITH r AS (
    UPDATE {messages} m
    SET status = 'pending', parked_until = NULL, locked_until = NULL, locked_by = NULL, available_at = now(),
        retry_count = m.retry_count + 1, last_error = 'lease expired',
        first_failed_at = coalesce(m.first_failed_at, now()), last_failed_at = now()
    WHERE m.seq = ANY(ARRAY(
        SELECT seq FROM {messages}
        WHERE %s
        LIMIT %d
        FOR UPDATE SKIP LOCKED))
    RETURNING m.queue_name
)
SELECT queue_name, count(*) FROM r GROUP BY queue_name`
	q.reapParked = r.Replace(fmt.Sprintf(reap, "parked_until < now() ORDER BY parked_until", reapBatch))
	q.reapAll = r.Replace(fmt.Sprintf(reap, "status = 'processing' AND locked_until < now()", reapBatch))

	// This backend's heartbeat as a lease holder ($1), good for a lease
	// ($2 milliseconds).
	q.heartbeat = r.Replace(`
INSERT INTO {holders} (holder, alive_until, lease_ms) VALUES ($1, now() + $2 * interval '1 millisecond', $2)
ON CONFLICT (holder) DO UPDATE SET alive_until = EXCLUDED.alive_until, lease_ms = EXCLUDED.lease_ms`)
	// Whether some holder's heartbeat ran out (the sweep's row aside), and
	// the database's time, which bounds what a full reap from now returns.
	q.deadHolders = r.Replace(`
SELECT EXISTS (SELECT 1 FROM {holders} WHERE alive_until < now() AND holder <> 'sweep'), now()`)
	// Holders whose every lease had expired before $1, when a full reap
	// that returned them all started: a holder claims only while its
	// heartbeat runs (see Driver.holding), so its leases expire at most a
	// lease after its heartbeat ran out.
	q.dropHolders = r.Replace(`
DELETE FROM {holders}
WHERE holder <> 'sweep' AND alive_until + lease_ms * interval '1 millisecond' < $1`)
	// A closing backend's heartbeat: its row goes when it holds no
	// unparked lease (the engine gave back what it buffered), otherwise it
	// runs out now, so that the other backends return those leases as
	// soon as they expire. Parked leases need no holder row.
	q.stopHolding = r.Replace(`
WITH held AS (
    SELECT EXISTS (SELECT 1 FROM {messages}
                   WHERE status = 'processing' AND parked_until IS NULL AND left(locked_by, length($1) + 1) = $1 || ':') AS yes
), gone AS (
    DELETE FROM {holders} WHERE holder = $1 AND NOT (SELECT yes FROM held)
)
UPDATE {holders} SET alive_until = least(alive_until, now()) WHERE holder = $1 AND (SELECT yes FROM held)`)
	// The hourly full reap, in case (leases of a release before migration
	// 0007, or of a holder row deleted by hand): the backend whose update
	// moves the sweep's time on makes it.
	q.sweep = r.Replace(`
INSERT INTO {holders} AS h (holder, alive_until, lease_ms) VALUES ('sweep', now() + $1 * interval '1 millisecond', 0)
ON CONFLICT (holder) DO UPDATE SET alive_until = EXCLUDED.alive_until WHERE h.alive_until < now()
RETURNING true`)

	// Which of the queues ($1) have a message ready: a probe of each
	// queue's index, as an empty claim's, but in one statement.
	q.readyQueues = r.Replace(`
SELECT q FROM unnest($1::text[]) AS q,
LATERAL (SELECT 1 FROM {messages}
         WHERE queue_name = q AND parked_until IS NULL AND status = 'pending' AND available_at <= now()
         LIMIT 1) r`)

	// The messages table's dead tuples by the statistics (0 before they
	// count any), and the database's oldest transaction: the oldest xmin
	// or xid of its sessions (autovacuum's aside: vacuums do not hold each
	// other back). The session asking has an xmin, so there is one. Then
	// the vacuum (see vacuum.go).
	q.vacuumStats = r.Replace(`
SELECT coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '{messages}'::regclass), 0),
       coalesce((SELECT x::text::int8 FROM pg_stat_activity, LATERAL (VALUES (backend_xmin), (backend_xid)) AS v(x)
                 WHERE datname = current_database() AND backend_type <> 'autovacuum worker' AND x IS NOT NULL
                 ORDER BY age(x) DESC LIMIT 1), 0)`)
	q.vacuum = r.Replace(`VACUUM (SKIP_LOCKED) {messages}`)

	// When the next scheduled message of a queue becomes due.
	q.nextDue = r.Replace(`
SELECT min(available_at) FROM {messages}
WHERE queue_name = $1 AND parked_until IS NULL AND status = 'pending' AND available_at > now()`)
}

// ensureArgs are the arguments of ensureQueues: the queues and their
// settings from pubsub.DefaultQueueSpec, the one place that says what an
// undeclared queue's settings are (the columns' SQL defaults, which say
// the same, serve only hand-written inserts).
func ensureArgs(names []string) []any {
	prio := make([]int32, len(names))
	retries := make([]int32, len(names))
	delays := make([]int64, len(names))
	for i, n := range names {
		spec := pubsub.DefaultQueueSpec(n)
		prio[i], retries[i], delays[i] = int32(spec.Priority), int32(spec.MaxRetries), spec.RetryDelay.Milliseconds()
	}
	return []any{names, prio, retries, delays}
}
