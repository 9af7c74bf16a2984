// Package postgres is QuantumFlow's PostgreSQL backend, the production
// default. Import it for its side effect and open it by URL:
//
//	import _ "github.com/quantumflow/quantumflow/backends/postgres"
//
//	backend, err := pubsub.Open(ctx, "postgres://user:pass@localhost/singularity")
//	err = backend.Init(ctx) // or `quantumflow init`: create or upgrade the tables
//
// # URLs
//
// postgres://user:password@host:port/database?param=value, and the same
// with postgresql://. QuantumFlow's parameters:
//
//   - schema=NAME: the schema holding the tables (default public), so that
//     several applications can share a database. Created by Init.
//   - listen=false: no LISTEN/NOTIFY wake-ups, poll only. Needed behind
//     PgBouncer in transaction mode (LISTEN needs a session); add
//     default_query_exec_mode=exec there too (no prepared statements).
//   - poll_interval=DURATION: how often an idle consumer looks for
//     messages (default 1s with LISTEN, 100ms without).
//   - lease=DURATION: how long a claimed message stays with a consumer
//     before others may take it (default 30s). The backend extends the
//     lease while it holds the message, so this is how soon the messages of
//     a consumer that died come back, not a limit on handler time.
//   - batch=N: the most messages one claim takes (default 1000).
//   - publish_batch=N: the most messages one publish transaction carries
//     (default 1000).
//   - notify_debounce=DURATION: a publish within this time of the last
//     NOTIFY of its queue from this backend skips its own; the next
//     transaction to notify covers it or, when publishing stops, a
//     trailing NOTIFY twice this time after the last (default 2ms).
//   - ack_delay=DURATION: how long acks and nacks may wait to be written
//     together (default 5ms).
//   - sync_acks=BOOL: whether claims, acks, nacks and dead-letter moves
//     wait for their commit to reach disk, as publishes always do (default
//     true; see Durability).
//   - max_payload=BYTES: the largest payload a message may have (default
//     1048576, 1 MiB, as NATS's default; at most 67108864, 64 MiB). A
//     publish with a larger payload is refused before anything is written,
//     with pubsub.ErrPayloadTooLarge naming the queue, the message, its
//     size and the limit; PublishTx checks it too. A publish transaction
//     carries up to publish_batch messages, each held in memory by the
//     publisher and the server's statement: large payloads and large
//     batches multiply.
//   - vacuum_threshold=N: how many dead tuples in the messages table make
//     a consuming backend vacuum it (default 50000; 0 leaves it to
//     autovacuum). See the last section.
//
// A backend opened with pubsub.WithNamespace(NS) keeps its tables in the
// schema SCHEMA_NS (at most 50 characters in all), created by Init and
// dropped with everything in it by DropNamespace.
//
// Every other parameter must be one of PostgreSQL's connection parameters
// as pgx understands them (sslmode, connect_timeout, application_name,
// pool_max_conns — default 20 here —, default_query_exec_mode, ...); an
// unknown one is an error wrapping pubsub.ErrInvalidURL. The password never
// appears in errors or logs.
//
// # Delivery semantics
//
// At least once, with competing consumers across any number of processes.
// The engine (package pubsub) receives a queue's messages for the
// backend's subscriptions of it, hands them out one at a time per
// subscription, and gives back what it received ahead and nobody took
// within 200ms, or when an admin read (Stats, ListPending) of the queue
// comes through this backend; see pubsub.Tuning. This package does the
// SQL. A receive is a claim: the next messages of the queue in one
// statement (FOR UPDATE SKIP LOCKED, priority DESC, created_at, seq), up
// to batch of them, turn status 'processing' with a lease (locked_until,
// locked_by), and the claim commits; no transaction is open while a
// handler runs. One claim of a queue runs at a time per backend, so that
// what the engine receives comes in delivery order.
//
// A claim starts reading the queue where the backend's last claim of it
// began (less 50ms: the claim floor), not at its start, where the index
// entries of the rows acked since the last vacuum lie: while a long
// transaction anywhere in the database holds vacuum back they pile up,
// and a claim from the start walks them all (bench/RESULTS.md, "Held-back
// vacuum"). Rows of another priority than the floor's are read in full. A
// message that becomes ready behind the floor (given back, retried or
// returned from an expired lease by another backend, or published in a
// transaction that committed more than 50ms after it began) is claimed by
// the next full read of the queue, which comes at least every 100ms, or
// every fifty times what the last full read took while those are slow
// (at most 30s); a message this backend returns or knows to be due has
// the next claim read in full.
//
// When nothing is ready a receive waits for a notification, a publish or
// a requeue by this backend, or the next scheduled message, and claims
// again. Every poll_interval one statement looks for ready messages in
// all the queues whose receives wait, and wakes those that have some
// (with LISTEN, a safety net; without it, how messages are found): an
// idle queue costs no transaction of its own. A message given back goes
// back to 'pending' with its attempt not counted.
//
// Ack deletes the row. Nack puts it back ('pending') with retry_count + 1,
// available_at = now() + the delay asked for through pubsub.Delivery, and
// the error as last_error, all in the database: attempts and delays
// survive restarts. A delivery marked dead-lettered moves to
// quantum_flow_dlq in one statement (DELETE ... RETURNING into INSERT): a
// message is in exactly one of the two tables at any time. Acks, nacks and
// moves are written in batches, within ack_delay (with sync_acks, in the
// queue's next claim's transaction when that comes first); Close and the
// admin operations write them first. A delivery whose subscription ended
// before it was settled goes back to 'pending' with its attempt counted
// and no failure recorded.
//
// # Durability
//
// A Publish commits with the server's synchronous_commit (on by default):
// when it returns nil the messages survive a crash of the database
// machine. By default (sync_acks=true) claims, acks, nacks and dead-letter
// moves do too: an acked message never comes back, and an attempt once
// counted stays counted, whatever crashes. Acks ride along with the next
// claim's commit and up to four claims of a queue are on their way at
// once, so this costs nothing measurable: in the last three full benchmark
// runs on the development machine, 4 workers consumed at 1.11-1.23x the
// raw pgx loop with sync_acks and 0.99-1.09x without (bench/RESULTS.md).
//
// With sync_acks=false they commit asynchronously (synchronous_commit off
// for their transactions only): if the database server crashes (a clean
// restart loses nothing), the last fraction of a second of them may be
// lost, and the messages concerned are delivered again, with the attempt
// count as it was: at least once, as always. The dead-letter move stays
// atomic either way.
//
// A lone publisher of one message per call waits for a flush every time:
// on the development machine (2 cores) it made 2.9-3.3k publishes/s in
// the last full runs, 0.8x a bare one-row INSERT with pgx into a table of
// the same columns (bench/RESULTS.md). Of the difference, this package's table (room for
// heap-only claims, its partial indexes) and statement cost the INSERT
// 3-8% by themselves, the engine about 15 µs a publish, and the NOTIFY
// once per notify_debounce about as much again (one process, a pgx loop
// and Publish taking turns on one pool). Concurrent publishes share
// commits: 8 publishers ran at 1.3-1.4x the raw loop's 8.
//
// The engine extends the leases of the messages a backend holds every
// third of the lease. When a consumer dies its leases run out and any
// backend consuming from the database returns the messages to their
// queues (counted as an attempt, last_error 'lease expired').
//
// A lease still held at its first extension is a slow message: the
// extension parks it (parked_until, the lease's expiry) out of the queue
// index and into an index of parked leases by expiry, so that claims stop
// walking past it: with 10k slow messages in flight a claim costs what it
// costs with none, instead of reading the 10k first (bench/RESULTS.md,
// "Slow messages in flight"). Any return to the queue unparks. The reaper
// runs every third of the lease in each consuming backend (or at once:
// Driver.ReapExpired) and costs what expired, not the table: it returns
// expired parked leases through their index, and reads the table for
// unparked ones only while a lease holder is dead. Every consuming backend
// is a lease holder with a heartbeat row in quantum_flow_lease_holders,
// renewed every third of the lease; a claim takes rows only while its
// holder's heartbeat runs, so a holder's unparked leases expire at most a
// lease after its heartbeat did, and the row goes after a full reap that
// came later. A backend that closes holding nothing deletes its row; one
// that closes still holding leases lets its row run out at once. Once an
// hour one backend of the database reads the table anyway, in case.
//
// Publish writes all its messages in one INSERT, or with COPY when a
// transaction carries 16 or more of a queue's messages whose payloads
// average 1 KiB or more (COPY reads rows as they come, where the insert
// builds an array of them first: with 4 KiB payloads, 100 per call, it
// is about a fifth faster; with 256 B, no faster). Concurrent publishes on
// one backend share transactions (group commit): while one is on its way,
// the publishes that come gather for the next (several run side by side
// only for groups of 100 messages or more); each returns after the commit
// that carries its messages, so nil means durable. A publish that finds
// no transaction in flight writes its own in the caller's goroutine, as a
// plain pgx call does; a single message goes in with an insert of one row.
// A publish notifies consumers (NOTIFY in the same transaction, at most
// once per notify_debounce of a queue, with a trailing NOTIFY when
// publishing stops); they also poll. A Publish whose context (its first
// message's) is done stores nothing; cancelled while it waits for a
// transaction, it is dropped; cancelled later, the wait ends with the
// context's error and the messages may or may not be stored (a
// transaction shared with other publishes completes, one of its own is
// interrupted).
// PublishTx publishes inside the application's own transaction.
//
// # Deduplication
//
// A message with a dedup key (pubsub.MetadataDedupKey, router.WithDedupKey)
// claims its key on its queue in quantum_flow_dedup, in the statement that
// inserts the messages (migration 0004): a new row keyed (queue_name,
// dedup_key) with the message's id and expires_at, now plus the queue's
// dedup_window_ms (quantum_flow_queues; NULL is the default, 2 minutes).
// A key whose row has not expired is a duplicate: the message is not
// inserted and Publish sets its UUID to the row's id. A publish that meets
// an expired row takes it over, so a key costs one row however often it is
// published; rows of keys never published again are deleted through the
// expires_at index, up to 5000 at a time, every minute by every backend
// that published with a key or consumes. So the table holds about one
// window's keys, and the check is a primary-key lookup. Concurrent
// publishes of one key wait for each other on the row: one stores the
// message, the others learn its id. Publishes without a key use the plain
// insert and never touch the table; the consume path is unchanged.
// PublishTx deduplicates the same way, within the caller's transaction (a
// rollback releases the keys it claimed).
//
// A key costs a publish a second durable row: on the development machine
// (2 cores, fsync cheap, the server CPU-bound) publishes with a key on
// every message ran at 0.63-0.72 times the same publishes without keys
// (bench publish_dedup, 8 publishers of 1 and 4 of 100 per call). The
// floor of any durable dedup, raw pgx writing each key into a unique index
// beside its row and nothing else, ran at 0.89-0.94 (1 per call) and
// 0.81-0.82 (100 per call) times raw pgx without keys in the same runs.
//
// # Effectively-once handling
//
// A handler whose effects are in the same database commits them together
// with the message's acknowledgement: HandleInTx(ctx, msg, fn) runs fn in
// a transaction, then AckTx deletes the message's row in it, guarded by
// the lease (locked_by and status), and commits. A crash before the commit
// leaves neither the effects nor the ack (the message comes back when its
// lease runs out); after it, both. The router's ack afterwards deletes
// nothing; a nack or dead letter of it does nothing either. A lease lost
// meanwhile (the handler outlived a lease the backend could not extend)
// fails AckTx with ErrLeaseLost and the transaction rolls back, so the
// consumer that took the message over is the only one whose effects count.
// From AckTx to the commit the row is locked, and the extension of the
// consumer's other leases waits for it: keep what follows AckTx short
// (HandleInTx acks last). TestHandleInTxSurvivesSIGKILL kills consumer
// processes at random moments of 10k such handlings: each effect is
// there exactly once.
//
// After a database restart the pool reconnects, the LISTEN connection is
// re-established (and every queue re-checked, since notifications were
// lost), and receives and the settle writer retry with backoff. A Publish
// that failed during the outage returned an error and may be retried.
//
// # Capabilities
//
// durable, delayed_redelivery, priority_order, dead_letters,
// transactional_publish, cross_process; and the instance registry
// (pubsub.InstanceStore) and namespaces (pubsub.NamespaceDropper).
//
// # Tables
//
// quantum_flow_queues (name, priority, max_retries, retry_delay_ms,
// created_at, updated_at, dedup_window_ms); quantum_flow_dedup
// (queue_name, dedup_key, id, expires_at, owner); quantum_flow_messages (seq, id, queue_name,
// payload, metadata, priority, status, retry_count, created_at,
// available_at, locked_until, locked_by, last_error, first_failed_at,
// last_failed_at, parked_until); the lease holders'
// heartbeats, quantum_flow_lease_holders (holder, alive_until, lease_ms;
// a row named 'sweep' says when the hourly full reap is due);
// quantum_flow_dlq (seq, id, queue_name, payload,
// metadata, priority, error, attempts, handler, service, first_failed_at,
// last_failed_at, message_created_at, created_at); the instance registry
// quantum_flow_instances (service, id, host, pid, version, nonce,
// started_at, heartbeat_at, consumers) and each broadcast queue's latest
// message, quantum_flow_latest (queue_name, id, payload, metadata,
// published_at); the paused queues, quantum_flow_paused_queues
// (queue_name, paused_at: pubsub.QueuePauser); the audit log
// quantum_flow_audit (id, at, role, remote, action, queue_name, count,
// detail, error); and quantum_flow_schema_migrations. A message published
// delayed or scheduled (pubsub.MetadataDeliverAt) gets that time as
// available_at, the column retries use. A declared queue's row holds its spec
// as given (max_retries 0 is "never retry"); a queue published or
// subscribed to without a declaration gets pubsub.DefaultQueueSpec. id is
// the message id (Watermill's UUID),
// the id the admin operations and the CLI use; seq orders and keys rows.
// In quantum_flow_messages, status 'pending' means waiting: ready, or
// scheduled for a retry (available_at in the future); 'processing' means
// leased to a consumer. quantum_flow_dlq.created_at is when the message was
// dead-lettered.
//
// Stats counts a queue's rows by state: Pending is 'pending' and due,
// Scheduled is 'pending' with available_at in the future, InFlight is
// 'processing' (with a consumer, or claimed ahead for one), DeadLetters is
// the queue's rows in quantum_flow_dlq.
//
// The seed's monitoring queries run as written (with a schema other than
// public, after SET search_path TO that schema): "pending messages" lists
// waiting messages (scheduled retries included) in delivery order; "failed
// messages" lists dead letters newest first; "queue stats" counts waiting
// messages per queue — note that its column named oldest is
// MAX(created_at), the newest waiting message (QueueStats.OldestPendingAge
// is the true oldest).
//
// The messages table is kept small (acked rows are deleted, dead letters
// moved out), vacuumed aggressively, and claimed through an index of each
// queue's messages in delivery order. A claim changes no indexed column,
// so that it is a heap-only update (no index entries written), and the
// table keeps half of each page free for those new row versions
// (fillfactor 50). Autovacuum comes to a database only once a minute
// (autovacuum_naptime), whatever the table's settings, and a busy queue
// leaves 100k-odd dead row versions a second: so consuming backends also
// vacuum the table themselves (VACUUM (SKIP_LOCKED), one at a time per
// database) once it holds vacuum_threshold dead tuples, looking every 2 s;
// after a vacuum that removed little, not before the oldest transaction in
// the database has ended (see vacuum.go). That takes the table's owner
// (the role that ran Init); another role's VACUUM only warns, and
// vacuuming stays with autovacuum. Stats report the table's dead tuples
// and the oldest open transaction in the database (see the Counter
// constants): a long transaction anywhere holds back vacuum, and the table
// grows (the claim floor keeps claims from walking what died meanwhile).
// Other users' transactions are visible in pg_stat_activity to superusers
// and members of pg_read_all_stats only.
package postgres
