package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// leaseFixture is a backend with a 1 s lease whose driver the test drives
// directly (claims and extensions as the engine would make them), and a
// connection to read its tables.
type leaseFixture struct {
	b    *pubsub.Backend
	d    *postgres.Driver
	conn *pgx.Conn
	db   string
}

func newLeaseFixture(t *testing.T) *leaseFixture {
	base := pgtest.Database(t)
	db := withParams(base, "lease", "1s")
	b := open(t, db)
	return &leaseFixture{b: b, d: b.Driver().(*postgres.Driver), conn: connect(t, base), db: db}
}

// count runs a count(*) query over the backend's schema ({s} in query).
func (f *leaseFixture) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	s := pgx.Identifier{f.d.Schema()}.Sanitize()
	require.NoError(t, f.conn.QueryRow(context.Background(), strings.ReplaceAll(query, "{s}", s)).Scan(&n))
	return n
}

// receive claims up to max messages of queue through the driver, waiting
// for at least one.
func (f *leaseFixture) receive(t *testing.T, queue string, max int) []*pubsub.Received {
	t.Helper()
	var got []*pubsub.Received
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ms, err := f.d.ReceiveBatch(ctx, queue, max)
		got = append(got, ms...)
		return err == nil && len(got) > 0
	}, 20*time.Second, 10*time.Millisecond)
	return got
}

// TestSlowLeaseParked: a lease still held at its first extension is
// parked (out of the claim's index), counts as in flight, does not stand
// in the way of the next claim, and comes back through the index of parked
// leases when it expires, its attempt counted.
func TestSlowLeaseParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("slow 1"), newMsg("slow 2"), newMsg("fast")))
	slow := f.receive(t, "q", 2)
	require.Len(t, slow, 2)
	require.Zero(t, f.count(t, `SELECT count(*) FROM {s}.quantum_flow_messages WHERE parked_until IS NOT NULL`), "a new lease is not parked")

	require.NoError(t, f.d.ExtendLeases(ctx, "q", slow))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM {s}.quantum_flow_messages WHERE parked_until IS NOT NULL`), "extended leases are parked")
	st, err := f.b.Stats(ctx, "q")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.InFlight, "parked leases are in flight")
	require.EqualValues(t, 1, st.Pending)

	fast := f.receive(t, "q", 10)
	require.Len(t, fast, 1)
	require.Equal(t, "fast", string(fast[0].Payload))
	require.NoError(t, f.d.Settle(ctx, "q", []pubsub.Settlement{{Msg: fast[0], Action: pubsub.SettleAck}}))

	// Nobody extends the slow ones again: the reaper returns them once
	// their lease ran out, unparked and with the attempt counted.
	back := f.receive(t, "q", 2)
	if len(back) < 2 {
		back = append(back, f.receive(t, "q", 2)...)
	}
	require.Len(t, back, 2)
	for _, m := range back {
		require.Equal(t, 2, m.Attempt, "%s", m.Payload)
	}
	require.Zero(t, f.count(t, `SELECT count(*) FROM {s}.quantum_flow_messages WHERE parked_until IS NOT NULL`))
}

// TestDeadHolderLeasesReturned: the unparked leases of a backend that
// closed while holding them come back once they expire, through another
// backend's reaper, and the holder's row goes after that; a backend that
// closes holding nothing removes its row at once.
func TestDeadHolderLeasesReturned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	holders := `SELECT count(*) FROM {s}.quantum_flow_lease_holders WHERE holder <> 'sweep'`
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("one"), newMsg("two")))
	require.Len(t, f.receive(t, "q", 2), 2)
	require.Equal(t, 1, f.count(t, holders))
	require.NoError(t, f.b.Close()) // the engine does not know of the driver's claims: they stay leased

	other := open(t, f.db)
	od := other.Driver().(*postgres.Driver)
	var back []*pubsub.Received
	require.Eventually(t, func() bool {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ms, err := od.ReceiveBatch(rctx, "q", 2)
		back = append(back, ms...)
		return err == nil && len(back) == 2
	}, 20*time.Second, 10*time.Millisecond)
	for _, m := range back {
		require.Equal(t, 2, m.Attempt, "%s", m.Payload)
	}
	require.NoError(t, od.Settle(ctx, "q", []pubsub.Settlement{{Msg: back[0], Action: pubsub.SettleAck}, {Msg: back[1], Action: pubsub.SettleAck}}))
	require.Eventually(t, func() bool { return f.count(t, holders) == 1 }, 20*time.Second, 50*time.Millisecond,
		"the closed holder's row goes once its leases were returned; the other's stays")

	require.NoError(t, other.Close())
	require.Zero(t, f.count(t, holders), "a holder that closes holding nothing removes its row")
}

// TestClaimNeedsHeartbeat: a backend whose heartbeat ran out in the
// database (it was away longer than a lease) claims nothing until its
// next heartbeat, so that every lease it takes is one the other backends
// know to look for if it dies.
func TestClaimNeedsHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("one")))
	require.NoError(t, postgres.Heartbeat(ctx, f.d)) // no ReceiveBatch: no reaper beating meanwhile
	_, err := f.conn.Exec(ctx, `UPDATE `+pgx.Identifier{f.d.Schema()}.Sanitize()+`.quantum_flow_lease_holders SET alive_until = now() - interval '1 second'`)
	require.NoError(t, err)
	ms, err := postgres.Claim(ctx, f.d, "q", 1)
	require.NoError(t, err)
	require.Empty(t, ms, "no claim while the heartbeat has run out")

	require.NoError(t, postgres.Heartbeat(ctx, f.d))
	ms, err = postgres.Claim(ctx, f.d, "q", 1)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "one", string(ms[0].Payload))
	require.Equal(t, 1, ms[0].Attempt)
}

// TestLostClaimReaped: the leases of a claim whose answer was lost (it
// committed, the connection broke before the answer came) are nobody's:
// the engine never saw them, so nothing extends or parks them, and the
// holder's heartbeat runs on. A full reap a lease after the failed claim
// returns them; without it they would wait for the hourly sweep.
func TestLostClaimReaped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t)
	require.NoError(t, postgres.Heartbeat(ctx, f.d))
	_, err := f.d.ReapExpired(ctx) // the database's first pass makes the hourly sweep: out of the way
	require.NoError(t, err)
	require.NoError(t, f.b.Publisher().Publish("q", newMsg("orphan")))
	ms, err := postgres.Claim(ctx, f.d, "q", 1) // as if its answer never came
	require.NoError(t, err)
	require.Len(t, ms, 1)

	time.Sleep(1200 * time.Millisecond) // the 1 s lease runs out
	require.NoError(t, postgres.Heartbeat(ctx, f.d))
	n, err := f.d.ReapExpired(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "an unparked lease of a live holder is not looked for")

	postgres.LostClaim(f.d)
	time.Sleep(1200 * time.Millisecond) // a lease after the lost claim
	require.NoError(t, postgres.Heartbeat(ctx, f.d))
	n, err = f.d.ReapExpired(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a lease after a lost claim, a full reap returns its leases")
	back, err := postgres.Claim(ctx, f.d, "q", 1)
	require.NoError(t, err)
	require.Len(t, back, 1)
	require.Equal(t, "orphan", string(back[0].Payload))
	require.Equal(t, 2, back[0].Attempt)
}
