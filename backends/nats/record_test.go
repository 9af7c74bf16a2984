package nats_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// receiveAll takes n messages of queue through d, asserting each one's
// attempt.
func receiveAll(t *testing.T, d pubsub.Driver, queue string, n, attempt int) []*pubsub.Received {
	t.Helper()
	var got []*pubsub.Received
	for len(got) < n {
		ms, err := d.ReceiveBatch(t.Context(), queue, n-len(got))
		require.NoError(t, err)
		got = append(got, ms...)
	}
	for _, m := range got {
		require.Equal(t, attempt, m.Attempt, "attempt of message #%d", m.Seq)
	}
	return got
}

func ackAll(t *testing.T, d pubsub.Driver, queue string, ms []*pubsub.Received) {
	t.Helper()
	ss := make([]pubsub.Settlement, len(ms))
	for i, m := range ms {
		ss[i] = pubsub.Settlement{Msg: m, Action: pubsub.SettleAck}
	}
	require.NoError(t, d.Settle(t.Context(), queue, ss))
}

// stateWrites returns how many messages the delivery-state stream ever
// stored, and how many give-back records of queue it holds now.
func stateWrites(t *testing.T, st jetstream.Stream, queue string) (written uint64, records int) {
	t.Helper()
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("QF.state."+queue+".given.*"))
	require.NoError(t, err)
	return info.State.LastSeq, len(info.State.Subjects)
}

func requireStats(t *testing.T, d pubsub.Driver, queue string, pending, inFlight int64) {
	t.Helper()
	st, err := d.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, pending, st.Pending, "pending")
	require.Equal(t, inFlight, st.InFlight, "in flight")
}

// TestGiveBackRecord follows one give-back through its life: the messages
// given back cost one state write together; another process counts them
// waiting; taken back by the same backend they count one attempt and cost
// no write; an admin read there counts them in flight, one elsewhere once
// their leases were extended; settled, nothing of their state is left.
func TestGiveBackRecord(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	a, b := openBackend(t, url).Driver(), openBackend(t, url).Driver()
	const queue, n = "record", 50
	require.NoError(t, a.SendBatch(t.Context(), queue, newMessages(n, "r")))
	state := rawStream(t, url, "QF-STATE")

	got := receiveAll(t, a, queue, n, 1)
	before, _ := stateWrites(t, state, queue)
	require.NoError(t, a.GiveBack(t.Context(), queue, got))
	after, records := stateWrites(t, state, queue)
	require.Equal(t, before+1, after, "one state write for the give-back")
	require.Equal(t, 1, records)
	requireStats(t, b, queue, n, 0)

	again := receiveAll(t, a, queue, n, 1)
	written, _ := stateWrites(t, state, queue)
	require.Equal(t, after, written, "taking them back wrote nothing")
	requireStats(t, a, queue, 0, n)

	const extended = 10
	require.NoError(t, a.(pubsub.LeaseExtender).ExtendLeases(t.Context(), queue, again[:extended]))
	requireStats(t, b, queue, n-extended, extended)

	ackAll(t, a, queue, again)
	require.Eventually(t, func() bool {
		info, err := state.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond, "delivery state left behind")
}

// TestGiveBackRecordSwept checks that a record whose messages another
// process settled goes at the next sweep of the queue's records (by the
// next backend to give back messages of the queue), and that the
// messages count one attempt there.
func TestGiveBackRecordSwept(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	a, b, c := openBackend(t, url).Driver(), openBackend(t, url).Driver(), openBackend(t, url).Driver()
	const queue, n = "swept", 20
	require.NoError(t, a.SendBatch(t.Context(), queue, newMessages(n, "s")))
	state := rawStream(t, url, "QF-STATE")

	require.NoError(t, a.GiveBack(t.Context(), queue, receiveAll(t, a, queue, n, 1)))
	ackAll(t, b, queue, receiveAll(t, b, queue, n, 1))
	// Acks are not answered: the sweep below must see them processed.
	cons, err := rawStream(t, url, "QF_"+queue).Consumer(t.Context(), "workers")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.AckFloor.Stream == n
	}, 5*time.Second, 20*time.Millisecond, "b's acks processed")
	_, records := stateWrites(t, state, queue)
	require.Equal(t, 1, records, "a's record stays: a never saw its messages again")

	require.NoError(t, c.SendBatch(t.Context(), queue, newMessages(1, "later")))
	require.NoError(t, c.GiveBack(t.Context(), queue, receiveAll(t, c, queue, 1, 1)))
	require.Eventually(t, func() bool {
		_, records := stateWrites(t, state, queue)
		return records == 1 // c's own
	}, 5*time.Second, 20*time.Millisecond, "a's record was not swept")
	ackAll(t, c, queue, receiveAll(t, c, queue, 1, 1))
	require.Eventually(t, func() bool {
		info, err := state.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond, "delivery state left behind")
}
