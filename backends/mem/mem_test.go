package mem_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/pubsub"
)

func open(t testing.TB, url string) *pubsub.Backend {
	t.Helper()
	b, err := pubsub.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func uniqueURL() string { return "mem://test-" + uuid.NewString() }

func TestOpenRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"mem://name?poll=1s",
		"mem://name?password=hunter2",
		"mem://user:hunter2@name",
		"mem://name/path",
		"mem://na%20me",
		"mem:name",
		"mem://name#frag",
	} {
		_, err := pubsub.Open(context.Background(), url)
		require.ErrorIs(t, err, pubsub.ErrInvalidURL, url)
		require.NotContains(t, err.Error(), "hunter2", "errors never show a password")
	}
}

func TestOpenAcceptsNamesAndRequire(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"mem://", "mem://a-b_c.d", "mem://x/", "mem://y?require=dead_letters,priority_order"} {
		b := open(t, url)
		require.Equal(t, mem.Scheme, b.Scheme())
	}
	_, err := pubsub.Open(context.Background(), "mem://z?require=durable")
	require.ErrorIs(t, err, pubsub.ErrUnsupported)
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	caps := open(t, "mem://").Capabilities()
	require.True(t, caps.Has(pubsub.CapDelayedRedelivery))
	require.True(t, caps.Has(pubsub.CapPriorityOrder))
	require.True(t, caps.Has(pubsub.CapDeadLetters))
	require.False(t, caps.Has(pubsub.CapDurable))
	require.False(t, caps.Has(pubsub.CapCrossProcess))
	require.False(t, caps.Has(pubsub.CapTransactionalPublish))
}

func TestSameNameSharesStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := uniqueURL()
	a, b, other, private := open(t, url), open(t, url), open(t, uniqueURL()), open(t, "mem://")

	require.NoError(t, a.Publisher().Publish("q", message.NewMessage("m1", []byte("x"))))
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending)

	for _, x := range []*pubsub.Backend{other, private, open(t, "mem://")} {
		_, err = x.Stats(ctx, "q")
		require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
	}

	ch, err := b.Subscriber().Subscribe(ctx, "q")
	require.NoError(t, err)
	msg := <-ch
	require.Equal(t, "m1", msg.UUID)
	msg.Ack()
}

func TestStorageDiscardedAfterLastClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := uniqueURL()
	a, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	b, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	require.NoError(t, a.Publisher().Publish("q", message.NewMessage("m1", nil)))
	require.NoError(t, a.Close())

	// b still holds the storage.
	st, err := b.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending)
	require.NoError(t, b.Close())

	c := open(t, url)
	_, err = c.Stats(ctx, "q")
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound, "a storage nobody had open is new")
}

func TestPublishIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, "mem://")
	good := message.NewMessage("good", nil)
	bad := message.NewMessage("bad", nil)
	bad.Metadata.Set(pubsub.MetadataPriority, "urgent")
	err := b.Publisher().Publish("q", good, bad)
	require.ErrorContains(t, err, "bad")
	require.ErrorContains(t, err, "q")
	_, err = b.Stats(ctx, "q")
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound, "a rejected batch leaves nothing behind")
}

func TestPublishCopiesMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := open(t, "mem://")
	msg := message.NewMessage("m", []byte("abc"))
	msg.Metadata.Set("k", "v")
	require.NoError(t, b.Publisher().Publish("q", msg))
	msg.Payload[0] = 'X'
	msg.Metadata.Set("k", "changed")

	ch, err := b.Subscriber().Subscribe(ctx, "q")
	require.NoError(t, err)
	got := <-ch
	require.Equal(t, "abc", string(got.Payload))
	require.Equal(t, "v", got.Metadata.Get("k"))
	// A handler that scribbles on the message before failing does not
	// change what is redelivered.
	got.Payload[0] = 'Y'
	got.Nack()
	again := <-ch
	require.Equal(t, "abc", string(again.Payload))
	again.Ack()
}

// TestSubscriptionEndReturnsHeldMessage checks that cancelling a
// subscription's context gives its unsettled message back at once, as a
// redelivery.
func TestSubscriptionEndReturnsHeldMessage(t *testing.T) {
	t.Parallel()
	b := open(t, "mem://")
	require.NoError(t, b.Publisher().Publish("q", message.NewMessage("m", nil)))
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscriber().Subscribe(ctx, "q")
	require.NoError(t, err)
	held := <-ch
	cancel()
	for range ch {
	}
	held.Ack() // too late: ignored

	ch2, err := b.Subscriber().Subscribe(context.Background(), "q")
	require.NoError(t, err)
	again := <-ch2
	require.Equal(t, "m", again.UUID)
	require.Equal(t, 2, pubsub.DeliveryOf(again).Attempt)
	again.Ack()
}

// TestManyDelayedRetries checks that many messages waiting for retries with
// different delays all come back, none early, through the queue's one
// timer. (Messages due together go back in queue order, not due order.)
func TestManyDelayedRetries(t *testing.T) {
	t.Parallel()
	b := open(t, "mem://")
	const n = 200
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(strconv.Itoa(i), nil)
	}
	require.NoError(t, b.Publisher().Publish("q", msgs...))
	ch, err := b.Subscriber().Subscribe(context.Background(), "q")
	require.NoError(t, err)
	start := time.Now()
	due := map[string]time.Time{}
	for acked := 0; acked < n; {
		select {
		case msg := <-ch:
			switch attempt := pubsub.DeliveryOf(msg).Attempt; attempt {
			case 1:
				i, _ := strconv.Atoi(msg.UUID)
				// Later messages get shorter delays, so the timer is
				// re-armed earlier again and again.
				delay := time.Duration(n-i) * time.Millisecond
				due[msg.UUID] = time.Now().Add(delay)
				pubsub.DeliveryOf(msg).RetryAfter(delay, nil)
				msg.Nack()
			case 2:
				require.False(t, time.Now().Before(due[msg.UUID]), "message %s back early", msg.UUID)
				msg.Ack()
				acked++
			default:
				t.Fatalf("message %s: attempt %d", msg.UUID, attempt)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("retries did not come back (after %s)", time.Since(start))
		}
	}
}

func TestConcurrentPublishConsume(t *testing.T) {
	t.Parallel()
	b := open(t, "mem://")
	const publishers, perPublisher, consumers = 4, 2000, 4
	var wg sync.WaitGroup
	seen := make(chan string, publishers*perPublisher)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range consumers {
		ch, err := b.Subscriber().Subscribe(ctx, "q")
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range ch {
				// Every fifth first delivery fails, to mix nacks in.
				if pubsub.DeliveryOf(msg).Attempt == 1 && msg.UUID[len(msg.UUID)-1]%5 == 0 {
					msg.Nack()
					continue
				}
				seen <- msg.UUID
				msg.Ack()
			}
		}()
	}
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perPublisher; i += 10 {
				batch := make([]*message.Message, 10)
				for j := range batch {
					batch[j] = message.NewMessage(fmt.Sprintf("%d-%d", p, i+j), nil)
				}
				if err := b.Publisher().Publish("q", batch...); err != nil {
					panic(err)
				}
			}
		}()
	}
	got := map[string]bool{}
	for len(got) < publishers*perPublisher {
		select {
		case id := <-seen:
			require.False(t, got[id], "message %s handled twice", id)
			got[id] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("received %d of %d", len(got), publishers*perPublisher)
		}
	}
	cancel()
	wg.Wait()
}
