package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// connect opens a plain pgx connection to url, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func newMsg(payload string) *message.Message {
	return message.NewMessage(uuid.NewString(), []byte(payload))
}

func subscribe(t *testing.T, b *pubsub.Backend, queue string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	return ch
}

func withParams(raw string, kv ...string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestURLParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)

	t.Run("UnknownParameter", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, withParams(db, "pol_interval", "1s"))
		require.ErrorIs(t, err, pubsub.ErrInvalidURL)
		require.ErrorContains(t, err, "pol_interval")
	})
	t.Run("BadValues", func(t *testing.T) {
		t.Parallel()
		for _, kv := range [][2]string{
			{"schema", "1bad"}, {"schema", "a-b"}, {"listen", "maybe"}, {"lease", "10ms"},
			{"poll_interval", "soon"}, {"batch", "0"}, {"publish_batch", "x"}, {"vacuum_threshold", "-1"},
		} {
			_, err := pubsub.Open(ctx, withParams(db, kv[0], kv[1]))
			require.ErrorIs(t, err, pubsub.ErrInvalidURL, "%s=%s", kv[0], kv[1])
		}
	})
	t.Run("PgxParametersPassThrough", func(t *testing.T) {
		t.Parallel()
		b, err := pubsub.Open(ctx, withParams(db, "connect_timeout", "5", "application_name", "qf-test",
			"pool_max_conns", "7", "lease", "5s", "poll_interval", "50ms", "batch", "10", "schema", "custom"))
		require.NoError(t, err)
		defer b.Close()
		d := b.Driver().(*postgres.Driver)
		require.Equal(t, "custom", d.Schema())
		require.EqualValues(t, 7, d.Pool().Config().MaxConns)
	})
	t.Run("PasswordNeverInErrors", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(db)
		require.NoError(t, err)
		u.User = url.UserPassword("nosuchuser", "s3cretpw")
		for _, raw := range []string{
			u.String(),
			withParams(u.String(), "sslmode", "bogus"),
			withParams(u.String(), "nope", "1"),
			strings.Replace(withParams(db, "password", "s3cretpw"), "postgres@", "nosuchuser@", 1),
		} {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := pubsub.Open(ctx, raw)
			cancel()
			require.Error(t, err)
			require.NotContains(t, err.Error(), "s3cretpw")
		}
	})
}

func TestNotInitialized(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, pgtest.Database(t))
	require.NoError(t, err)
	defer b.Close()
	err = b.Publisher().Publish("q", newMsg("x"))
	require.ErrorIs(t, err, pubsub.ErrNotInitialized)
	require.ErrorContains(t, err, "queue q")
	_, err = b.Stats(ctx, "q")
	require.ErrorIs(t, err, pubsub.ErrNotInitialized)
	_, err = b.Subscriber().Subscribe(ctx, "q")
	require.ErrorIs(t, err, pubsub.ErrNotInitialized)

	require.NoError(t, b.Init(ctx))
	require.NoError(t, b.Publisher().Publish("q", newMsg("x")))
}

func TestConcurrentInit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := pgtest.Database(t)
	db := withParams(base, "schema", "qf")
	const n = 6
	backends := make([]*pubsub.Backend, n)
	for i := range backends {
		b, err := pubsub.Open(ctx, db)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		backends[i] = b
	}
	start := make(chan struct{})
	errs := make(chan error, n)
	for _, b := range backends {
		go func() {
			<-start
			errs <- b.Init(ctx)
		}()
	}
	close(start)
	for range n {
		require.NoError(t, <-errs)
	}
	conn := connect(t, base)
	var versions, latest int
	var tables []string
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), max(version) FROM qf.quantum_flow_schema_migrations`).Scan(&versions, &latest))
	require.NoError(t, conn.QueryRow(ctx, `SELECT array_agg(tablename ORDER BY tablename) FROM pg_tables WHERE schemaname = 'qf'`).Scan(&tables))
	require.Equal(t, latest, versions, "every migration applied once")
	require.Equal(t, []string{"quantum_flow_audit", "quantum_flow_dedup", "quantum_flow_dlq", "quantum_flow_instances", "quantum_flow_latest", "quantum_flow_lease_holders", "quantum_flow_messages",
		"quantum_flow_paused_queues", "quantum_flow_queues", "quantum_flow_schema_migrations"}, tables)
	// And again, with the tables in place.
	require.NoError(t, backends[0].Init(ctx))
}

func TestSchemasAreIndependent(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	a := open(t, withParams(db, "schema", "app_a"))
	b := open(t, withParams(db, "schema", "app_b"))
	require.NoError(t, a.Publisher().Publish("shared_name", newMsg("for a")))
	msg := pubsubtest.Receive(t, subscribe(t, a, "shared_name"))
	require.Equal(t, "for a", string(msg.Payload))
	msg.Ack()
	_, err := b.Stats(context.Background(), "shared_name")
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
}

// TestSeedQueries runs the seed's three monitoring queries verbatim and
// checks they return what they say.
func TestSeedQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	conn := connect(t, db)

	const qa, qb = "proposals_for_consensus_queue", "rollback_triggers_queue"
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: qb, Priority: pubsub.PriorityHigh}))
	low, high := newMsg(`{"n":"low"}`), newMsg(`{"n":"high"}`)
	pubsub.SetPriority(high, 5)
	require.NoError(t, b.Publisher().Publish(qa, low))
	require.NoError(t, b.Publisher().Publish(qa, high))
	rb := newMsg(`{"n":"rollback"}`)
	require.NoError(t, b.Publisher().Publish(qb, rb))
	dead, held := newMsg(`{"n":"dead"}`), newMsg(`{"n":"held"}`)
	const qc = "consensus_results_queue"
	require.NoError(t, b.Publisher().Publish(qc, dead, held))

	// dead goes to the dead-letter queue; held stays with its consumer.
	ch := subscribe(t, b, qc)
	m := pubsubtest.Receive(t, ch)
	require.Equal(t, dead.UUID, m.UUID)
	pubsub.DeliveryOf(m).MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom", Handler: "handle_consensus_result", Service: "singularity"})
	m.Ack()
	m = pubsubtest.Receive(t, ch)
	require.Equal(t, held.UUID, m.UUID)
	defer m.Ack()
	// Let the fetcher's ahead-claims (if any) go back, and the move land.
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qc)
		return err == nil && st.InFlight == 1 && st.DeadLetters == 1 && st.Pending == 0
	}, 10*time.Second, 10*time.Millisecond)

	// View pending messages
	rows, err := conn.Query(ctx, `SELECT id, queue_name, payload, created_at, retry_count
FROM quantum_flow_messages
WHERE status = 'pending'
ORDER BY priority DESC, created_at ASC;`)
	require.NoError(t, err)
	type pendingRow struct {
		id, queue, payload string
		retries            int
	}
	var pending []pendingRow
	for rows.Next() {
		var r pendingRow
		var created time.Time
		var payload []byte
		require.NoError(t, rows.Scan(&r.id, &r.queue, &payload, &created, &r.retries))
		r.payload = string(payload)
		pending = append(pending, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []pendingRow{
		{rb.UUID, qb, `{"n":"rollback"}`, 0}, // priority 10 (its queue's)
		{high.UUID, qa, `{"n":"high"}`, 0},   // 5
		{low.UUID, qa, `{"n":"low"}`, 0},     // 0
	}, pending, "waiting messages, in delivery order; the held one is not pending")

	// View failed messages
	var id, queue, errText string
	var created time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT id, queue_name, error, created_at
FROM quantum_flow_dlq
ORDER BY created_at DESC;`).Scan(&id, &queue, &errText, &created))
	require.Equal(t, []string{dead.UUID, qc, "boom"}, []string{id, queue, errText})
	require.WithinDuration(t, time.Now(), created, time.Minute)

	// Queue stats
	rows, err = conn.Query(ctx, `SELECT queue_name, COUNT(*) as pending_count, MAX(created_at) as oldest
FROM quantum_flow_messages
WHERE status = 'pending'
GROUP BY queue_name;`)
	require.NoError(t, err)
	counts := map[string]int64{}
	for rows.Next() {
		var q string
		var n int64
		var newest time.Time
		require.NoError(t, rows.Scan(&q, &n, &newest))
		counts[q] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]int64{qa: 2, qb: 1}, counts)
	for _, q := range []string{qa, qb} {
		st, err := b.Stats(ctx, q)
		require.NoError(t, err)
		require.Equal(t, counts[q], st.Pending+st.Scheduled, "the seed's pending_count is Stats' pending + scheduled")
	}
}

// TestDeadLetterMoveIsAtomic watches a message while it is dead-lettered:
// in every snapshot it is in exactly one of the two tables.
func TestDeadLetterMoveIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	const n = 200
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg(fmt.Sprint(i))
	}
	const queue = "dlq_atomic"
	require.NoError(t, b.Publisher().Publish(queue, msgs...))

	conn := connect(t, db)
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		var observations int
		for {
			select {
			case <-stop:
				if observations == 0 {
					watched <- errors.New("no observation")
				} else {
					watched <- nil
				}
				return
			default:
			}
			var inQueue, inDLQ int
			// One statement: one snapshot.
			err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM quantum_flow_messages WHERE queue_name = $1),
			                                  (SELECT count(*) FROM quantum_flow_dlq WHERE queue_name = $1)`, queue).Scan(&inQueue, &inDLQ)
			if err != nil {
				watched <- err
				return
			}
			if inQueue+inDLQ != n {
				watched <- fmt.Errorf("snapshot with %d in the queue and %d dead letters, want %d in all", inQueue, inDLQ, n)
				return
			}
			observations++
		}
	}()
	ch := subscribe(t, b, queue)
	for range n {
		m := pubsubtest.Receive(t, ch)
		pubsub.DeliveryOf(m).MarkDeadLetter(pubsub.DeadLetterReason{Error: "poison"})
		if m.UUID[0]%2 == 0 {
			m.Ack()
		} else {
			m.Nack()
		}
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, queue)
		return err == nil && st.DeadLetters == n
	}, 10*time.Second, 10*time.Millisecond)
	close(stop)
	require.NoError(t, <-watched)
	dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: queue, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, dls, n)
	for _, dl := range dls {
		require.Equal(t, "poison", dl.Error)
		require.Equal(t, 1, dl.Attempts)
	}
}

func TestPublishTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	d := b.Driver().(*postgres.Driver)
	conn := connect(t, db)
	_, err := conn.Exec(ctx, `CREATE TABLE proposals (id text PRIMARY KEY)`)
	require.NoError(t, err)
	const queue = "proposals_for_consensus_queue"
	ch := subscribe(t, b, queue)

	// Rolled back: neither the row nor the message.
	rolledBack := newMsg("rolled back")
	tx, err := d.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO proposals VALUES ('p1')`)
	require.NoError(t, err)
	require.NoError(t, postgres.PublishTx(ctx, b, tx, queue, rolledBack))
	require.NoError(t, tx.Rollback(ctx))

	// Committed, through the Watermill publisher bound to the transaction,
	// on the application's own connection.
	committed := newMsg("committed")
	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO proposals VALUES ('p2')`)
	require.NoError(t, err)
	require.NoError(t, d.TxPublisher(ctx, tx).Publish(queue, committed))
	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	require.Zero(t, st.Pending+st.InFlight, "not visible before commit")
	require.NoError(t, tx.Commit(ctx))

	m := pubsubtest.Receive(t, ch)
	require.Equal(t, committed.UUID, m.UUID)
	m.Ack()
	select {
	case m := <-ch:
		t.Fatalf("received %s (%s), published in a rolled-back transaction", m.UUID, m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	var rowsN int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM proposals`).Scan(&rowsN))
	require.Equal(t, 1, rowsN)
}

// TestPollOnly consumes without LISTEN, as behind PgBouncer in
// transaction mode: publishes from another backend arrive by polling.
func TestPollOnly(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	pub := open(t, db)
	sub := open(t, withParams(db, "listen", "false", "poll_interval", "20ms", "default_query_exec_mode", "exec"))
	ch := subscribe(t, sub, "q")
	for i := range 20 {
		sent := newMsg(fmt.Sprint(i))
		require.NoError(t, pub.Publisher().Publish("q", sent))
		m := pubsubtest.Receive(t, ch)
		require.Equal(t, sent.UUID, m.UUID)
		m.Ack()
	}
}

// TestCrossBackendWakeUp checks that a consumer on another backend is
// woken by NOTIFY, not by its (here: hour-long) poll.
func TestCrossBackendWakeUp(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	pub := open(t, db)
	sub := open(t, withParams(db, "poll_interval", "1h"))
	ch := subscribe(t, sub, "q")
	// The subscription is polled once when it starts; wait for that to be
	// over so that only NOTIFY can deliver what follows.
	time.Sleep(100 * time.Millisecond)
	for i := range 20 {
		sent := newMsg(fmt.Sprint(i))
		require.NoError(t, pub.Publisher().Publish("q", sent))
		m := pubsubtest.Receive(t, ch)
		require.Equal(t, sent.UUID, m.UUID)
		m.Ack()
	}
}

// TestNotifyDebounce checks that a lone publisher notifies a queue at
// most once per notify_debounce inside its transactions, and that the
// messages of the transactions that skipped are notified when it stops.
func TestNotifyDebounce(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	pub := open(t, withParams(db, "notify_debounce", "1s"))
	conn := connect(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := conn.Exec(ctx, "LISTEN quantum_flow_public")
	require.NoError(t, err)

	start := time.Now()
	for i := range 30 {
		require.NoError(t, pub.Publisher().Publish("q", newMsg(fmt.Sprint(i))))
	}
	stopped := time.Now()
	var at []time.Time
	for {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		n, err := conn.WaitForNotification(wctx)
		wcancel()
		if err != nil {
			break // none for longer than the trailing notification waits
		}
		require.Equal(t, "q", n.Payload)
		at = append(at, time.Now())
	}
	require.NotEmpty(t, at, "no notification at all")
	intervals := int(stopped.Sub(start)/time.Second) + 1
	require.LessOrEqual(t, len(at), intervals+1, "notifications of a 30-message burst with a 1s debounce")
	require.True(t, at[len(at)-1].After(stopped), "no notification after the last publish: its message waits for a poll")
}

// TestPublishCancelledWhileWriting checks that a publish whose context
// ends while its transaction waits on the database returns at once with
// the context's error, and that the backend publishes afterwards.
func TestPublishCancelledWhileWriting(t *testing.T) {
	t.Parallel()
	db := pgtest.Database(t)
	pub := open(t, db)
	require.NoError(t, pub.Publisher().Publish("q", newMsg("first")))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock, err := connect(t, db).Begin(ctx)
	require.NoError(t, err)
	_, err = lock.Exec(ctx, "LOCK TABLE quantum_flow_messages IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	mctx, mcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer mcancel()
	m := newMsg("blocked")
	m.SetContext(mctx)
	start := time.Now()
	err = pub.Publisher().Publish("q", m)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 10*time.Second, "the publish waited for the lock, not for its context")

	require.NoError(t, lock.Rollback(ctx))
	require.NoError(t, pub.Publisher().Publish("q", newMsg("after")))
}

// TestGroupCommit publishes from many goroutines at once; every Publish
// that returned nil is durable and delivered once.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	const publishers, each = 32, 20
	var wg sync.WaitGroup
	ids := make(chan string, publishers*each)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := newMsg(fmt.Sprintf("%d-%d", p, i))
				if assert.NoError(t, b.Publisher().Publish("group", m)) {
					ids <- m.UUID
				}
			}
		}()
	}
	wg.Wait()
	close(ids)
	st, err := b.Stats(ctx, "group")
	require.NoError(t, err)
	require.EqualValues(t, publishers*each, st.Pending)
	conn := connect(t, db)
	var txs int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM quantum_flow_messages`).Scan(&txs))
	t.Logf("%d messages from %d goroutines in %d transactions", publishers*each, publishers, txs)
	require.Less(t, txs, publishers*each, "concurrent publishes share transactions")

	ch := subscribe(t, b, "group")
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	for len(want) > 0 {
		m := pubsubtest.Receive(t, ch)
		require.True(t, want[m.UUID], "unexpected or duplicate message %s", m.UUID)
		delete(want, m.UUID)
		m.Ack()
	}
}

// TestDelayedRetrySurvivesRestartOfBackend nacks with a delay on one
// backend, closes it, and receives the message on another after the delay
// with the attempt and error kept in the database.
func TestDelayedRetryIsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	a := open(t, db)
	sent := newMsg("retry me")
	require.NoError(t, a.Publisher().Publish("q", sent))
	m := pubsubtest.Receive(t, subscribe(t, a, "q"))
	pubsub.DeliveryOf(m).RetryAfter(500*time.Millisecond, errors.New("downstream timeout"))
	nacked := time.Now()
	m.Nack()
	require.NoError(t, a.Close())

	conn := connect(t, db)
	var retries int
	var lastErr string
	var avail time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT retry_count, last_error, available_at FROM quantum_flow_messages WHERE id = $1`, sent.UUID).
		Scan(&retries, &lastErr, &avail))
	require.Equal(t, 1, retries)
	require.Equal(t, "downstream timeout", lastErr)
	require.WithinDuration(t, nacked.Add(500*time.Millisecond), avail, 400*time.Millisecond)

	b := open(t, db)
	m = pubsubtest.Receive(t, subscribe(t, b, "q"))
	require.GreaterOrEqual(t, time.Since(nacked), 450*time.Millisecond)
	require.Equal(t, sent.UUID, m.UUID)
	require.Equal(t, 2, pubsub.DeliveryOf(m).Attempt)
	m.Ack()
}

// TestUnstorableText: what PostgreSQL cannot store as text fails only the
// Publish carrying it, and a handler error with such bytes still
// dead-letters its message (and does not hold up other settlements).
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, pgtest.Database(t))
	bad := newMsg("x")
	bad.Metadata.Set("k", "nul\x00inside")
	good := newMsg("fine")
	errs := make(chan error, 2)
	go func() { errs <- b.Publisher().Publish("q", bad) }()
	go func() { errs <- b.Publisher().Publish("q", good) }()
	var failed int
	for range 2 {
		if err := <-errs; err != nil {
			require.ErrorContains(t, err, "NUL")
			failed++
		}
	}
	require.Equal(t, 1, failed)
	require.Error(t, b.Publisher().Publish("q", message.NewMessage("bad\xffid", nil)))

	ch := subscribe(t, b, "q")
	m := pubsubtest.Receive(t, ch)
	require.Equal(t, good.UUID, m.UUID)
	pubsub.DeliveryOf(m).MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom \x00 \xff\xfe", Handler: "h\x00"})
	m.Ack()
	require.Eventually(t, func() bool {
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: "q"})
		return err == nil && len(dls) == 1 && dls[0].Error == "boom  \uFFFD" && dls[0].Handler == "h"
	}, 10*time.Second, 10*time.Millisecond)
}

// TestHealthCounters: Stats shows the messages table's dead tuples and the
// age of the oldest open transaction, which holds vacuum back.
func TestHealthCounters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	b := open(t, db)
	require.NoError(t, b.Publisher().Publish("q", newMsg("1")))
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	for _, k := range []string{postgres.CounterDeadTuples, postgres.CounterLiveTuples, postgres.CounterOldestTransactionAge,
		postgres.CounterOldestXminAge, postgres.CounterSecondsSinceAutovacuum} {
		require.Contains(t, st.Counters, k)
	}

	// A transaction left open elsewhere (an idle-in-transaction session).
	tx, err := connect(t, db).Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT count(*) FROM quantum_flow_messages`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "q")
		return err == nil && st.Counters[postgres.CounterOldestTransactionAge] >= 1 && st.Counters[postgres.CounterOldestXminAge] >= 0
	}, 20*time.Second, 100*time.Millisecond)
}

// TestQueueSpecs: a declared queue lists back exactly as declared (zero
// retries and a zero delay included), and a queue used without a
// declaration gets pubsub.DefaultQueueSpec.
func TestQueueSpecs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, pgtest.Database(t))
	declared := pubsub.QueueSpec{Name: "never_retry", Priority: pubsub.PriorityHigh, DedupWindow: time.Second}
	require.NoError(t, b.DeclareQueue(ctx, declared))
	require.NoError(t, b.Publisher().Publish("undeclared", newMsg("x")))
	qs, err := b.ListQueues(ctx)
	require.NoError(t, err)
	got := map[string]pubsub.QueueSpec{}
	for _, q := range qs {
		got[q.Name] = pubsub.QueueSpec{Name: q.Name, Priority: q.Priority, MaxRetries: q.MaxRetries, RetryDelay: q.RetryDelay, DedupWindow: q.DedupWindow}
	}
	require.Equal(t, map[string]pubsub.QueueSpec{
		"never_retry": declared,
		"undeclared":  pubsub.DefaultQueueSpec("undeclared"),
	}, got)
}

// TestLeaseExtended: a message held longer than its lease stays with its
// consumer (the engine extends the lease), while another backend consumes
// the same queue and reaps expired leases.
func TestLeaseExtended(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A lease long enough that the extensions (every third of it) are in
	// time on a loaded machine: at 300ms, one was once late.
	db := withParams(pgtest.Database(t), "lease", "2s")
	a, b := open(t, db), open(t, db)
	sent := newMsg("slow")
	require.NoError(t, a.Publisher().Publish("q", sent))
	m := pubsubtest.Receive(t, subscribe(t, a, "q"))
	other := subscribe(t, b, "q")
	select {
	case m2 := <-other:
		t.Fatalf("another consumer received %s (%s) while the first held it", m2.UUID, m2.Payload)
	case <-time.After(5 * time.Second): // two and a half leases
	}
	m.Ack()
	require.Eventually(t, func() bool {
		st, err := a.Stats(ctx, "q")
		return err == nil && st.Pending+st.InFlight+st.Scheduled+st.DeadLetters == 0
	}, 10*time.Second, 10*time.Millisecond)
}

// TestNamespace: a backend opened with a namespace keeps its queues in a
// schema of its own, and DropNamespace removes that schema only.
func TestNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Database(t)
	plain := open(t, db)
	require.NoError(t, plain.Publisher().Publish("q", newMsg("outside")))
	ns, err := pubsub.Open(ctx, db, pubsub.WithNamespace("demo1"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Close() })
	require.NoError(t, ns.Init(ctx))
	require.NoError(t, ns.Publisher().Publish("q", newMsg("inside"), newMsg("inside too")))
	st, err := ns.Stats(ctx, "q")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Pending)
	m := pubsubtest.Receive(t, subscribe(t, ns, "q"))
	require.Equal(t, "inside", string(m.Payload))
	m.Ack()

	require.NoError(t, ns.DropNamespace(ctx))
	var schemas []string
	require.NoError(t, connect(t, db).QueryRow(ctx, `SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'public%'`).Scan(&schemas))
	require.Equal(t, []string{"public"}, schemas, "the namespace's schema is gone")
	st, err = plain.Stats(ctx, "q")
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Pending, "the queue outside the namespace is untouched")
}
