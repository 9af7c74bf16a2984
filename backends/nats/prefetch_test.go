package nats_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestGiveBackThenRedeliveredHere checks messages received ahead and
// given back when the last subscription ends, then taken by a new
// subscription of the same backend (the state written at the give-back is
// found without reading it back): each counts one attempt, and nothing of
// the delivery state is left once they are acked. A message the ending
// subscription still handed out (read by the drain below, never settled)
// reached its consumer: it counts two.
func TestGiveBackThenRedeliveredHere(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url+"?prefetch=200")
	const queue = "putback"
	msgs := newMessages(20000, "p")
	require.NoError(t, b.Publisher().Publish(queue, msgs...))

	seen := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	// Fast for a while: the engine receives ahead.
	start := time.Now()
	for time.Since(start) < 200*time.Millisecond && len(seen) < 18000 {
		msg := pubsubtest.Receive(t, ch)
		seen[msg.UUID] = pubsub.DeliveryOf(msg).Attempt
		msg.Ack()
	}
	cancel()
	interrupted := map[string]bool{}
	for msg := range ch {
		interrupted[msg.UUID] = true
	}

	ch = subscribe(t, b, queue)
	for len(seen) < len(msgs) {
		msg := pubsubtest.Receive(t, ch)
		_, dup := seen[msg.UUID]
		require.False(t, dup, "message %s delivered again after its ack", msg.UUID)
		seen[msg.UUID] = pubsub.DeliveryOf(msg).Attempt
		msg.Ack()
	}
	for id, attempt := range seen {
		want := 1
		if interrupted[id] {
			want = 2
		}
		require.Equal(t, want, attempt, "attempt of %s", id)
	}
	cons, err := rawStream(t, url, "QF_"+queue).Consumer(t.Context(), "workers")
	require.NoError(t, err)
	require.Greater(t, cons.CachedInfo().Delivered.Consumer, uint64(len(msgs)), "some messages were given back and delivered again")
	require.Eventually(t, func() bool {
		st, err := rawStream(t, url, "QF-STATE").Info(t.Context())
		return err == nil && st.State.Msgs == 0
	}, 5*time.Second, 20*time.Millisecond, "delivery state left behind")
}

// TestOrderThroughGiveBacksWithStalePulls checks that messages given back
// come again in their order even when JetStream redelivers them out of
// it. A pull request whose client is gone stays on the server until it
// next looks at its waiting requests; a redelivery it takes from the
// queue for such a request meanwhile goes to the back of the redelivery
// queue (nats-server's consumer.loopAndGatherMsgs). The conformance case
// OrderThroughGiveBacks failed once on a fresh clone with the symptom
// this gives (one message overtaken by the next). Here a raw connection
// sends such requests all along, with no subscriber for their reply
// subject, while one consumer alternates fast bursts and stalls past the
// prefetch hold.
func TestOrderThroughGiveBacksWithStalePulls(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url)
	const queue, total, stall = "stalepulls", 60, 350 * time.Millisecond
	msgs := newMessages(total, "s")
	for i, m := range msgs {
		m.Payload = []byte(strconv.Itoa(i))
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	ch := subscribe(t, b, queue)

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			_ = nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.QF_"+queue+".workers",
				"stale.pull."+strconv.Itoa(i), []byte(`{"batch":1,"expires":10000000000}`))
		}
	}()

	burst, left := 3, 3
	for i, w := range msgs {
		msg := pubsubtest.Receive(t, ch)
		require.Equal(t, w.UUID, msg.UUID, "message %d: got %s", i, msg.Payload)
		require.Equal(t, 1, pubsub.DeliveryOf(msg).Attempt, "attempt of message %d: given back, not counted", i)
		if left--; left == 0 {
			time.Sleep(stall)
			burst = burst%7 + 2
			left = burst
		}
		msg.Ack()
	}
}

// TestGivenBackTakenElsewhere checks that a backend stops waiting for
// messages it gave back once another process took them: a first delivery
// comes from JetStream only when no redelivery waits, so a new message
// that reaches the backend afterwards goes to its consumer at once. Had
// the backend held it back, behind messages that were not coming, its
// prefetch hold would have given it back, and JetStream would count a
// second delivery of it.
func TestGivenBackTakenElsewhere(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	a, b := openBackend(t, url), openBackend(t, url)
	const queue, total, fast = "elsewhere", 30, 10
	require.NoError(t, a.Publisher().Publish(queue, newMessages(total, "e")...))

	// a's consumer takes ten fast (a receives ahead), then holds the
	// eleventh past the hold: a gives back what it received ahead.
	ch := subscribe(t, a, queue)
	for range fast {
		pubsubtest.Receive(t, ch).Ack()
	}
	held := pubsubtest.Receive(t, ch)
	// b takes the rest, given back or never received by a.
	bctx, stopB := context.WithCancel(t.Context())
	bch, err := b.Subscriber().Subscribe(bctx, queue)
	require.NoError(t, err)
	for range total - fast - 1 {
		m := pubsubtest.Receive(t, bch)
		require.Equal(t, 1, pubsub.DeliveryOf(m).Attempt)
		m.Ack()
	}
	stopB()
	for range bch {
	}

	cons, err := rawStream(t, url, "QF_"+queue).Consumer(t.Context(), "workers")
	require.NoError(t, err)
	info, err := cons.Info(t.Context())
	require.NoError(t, err)
	deliveries := info.Delivered.Consumer
	require.Greater(t, deliveries, uint64(total), "a gave back messages (delivered again, to b)")
	fresh := newMessages(1, "fresh")[0]
	require.NoError(t, a.Publisher().Publish(queue, fresh))
	held.Ack()
	m := pubsubtest.Receive(t, ch)
	require.Equal(t, fresh.UUID, m.UUID)
	m.Ack()
	info, err = cons.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, deliveries+1, info.Delivered.Consumer, "the new message was delivered once")
}
