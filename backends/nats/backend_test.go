package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// server starts an embedded server for one test.
func server(t *testing.T) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// requireNothing checks that ch delivers nothing for d (an absence can
// only be shown by waiting).
func requireNothing(t *testing.T, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg := <-ch:
		t.Fatalf("unexpected message %s", msg.UUID)
	case <-time.After(d):
	}
}

func subscribe(t *testing.T, b *pubsub.Backend, queue string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	return ch
}

func TestOpenURLErrors(t *testing.T) {
	t.Parallel()
	srv := server(t)
	base := srv.ClientURL()
	for _, c := range []struct{ query, want string }{
		{"bogus=1", `unknown parameter "bogus"`},
		{"replicas=0", "parameter replicas"},
		{"replicas=x", "parameter replicas"},
		{"storage=disk", "parameter storage"},
		{"consumer_storage=ram", "parameter consumer_storage"},
		{"ack_wait=10ms", "parameter ack_wait"},
		{"ack_wait=soon", "parameter ack_wait"},
		{"max_msgs=0", "parameter max_msgs"},
		{"max_bytes=-2", "parameter max_bytes"},
		{"max_ack_pending=0", "parameter max_ack_pending"},
		{"prefetch=0", "parameter prefetch"},
		{"prefix=a.b", "parameter prefix"},
		{"servers=http://x", "parameter servers"},
		{"tls_cert=/x", "tls_cert and tls_key go together"},
		{"replicas=1&replicas=3", "given 2 times"},
	} {
		_, err := pubsub.Open(t.Context(), base+"?"+c.query)
		require.ErrorIs(t, err, pubsub.ErrInvalidURL, c.query)
		require.ErrorContains(t, err, c.want, c.query)
	}
	_, err := pubsub.Open(t.Context(), "nats://127.0.0.1:4222/path")
	require.ErrorIs(t, err, pubsub.ErrInvalidURL)
}

func TestOpenNeverShowsSecrets(t *testing.T) {
	t.Parallel()
	srv := server(t)
	port := srv.ClientURL()[strings.LastIndexByte(srv.ClientURL(), ':')+1:]
	for _, raw := range []string{
		"nats://alice:s3cret@127.0.0.1:" + port + "?bogus=1",
		"nats://alice:s3cret@127.0.0.1:1", // nothing listens there
		"nats://s3cret@127.0.0.1:1",       // a token
		"nats://127.0.0.1:" + port + "?nkey=s3cret",
	} {
		_, err := pubsub.Open(t.Context(), raw)
		require.Error(t, err, raw)
		require.NotContains(t, err.Error(), "s3cret", raw)
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	srv := server(t)
	b := openBackend(t, srv.ClientURL())
	caps := b.Capabilities()
	for _, c := range []pubsub.Capability{pubsub.CapDurable, pubsub.CapDelayedRedelivery, pubsub.CapDeadLetters, pubsub.CapCrossProcess} {
		require.True(t, caps.Has(c), "has %s", c)
	}
	require.False(t, caps.Has(pubsub.CapPriorityOrder), "JetStream has no per-message priority")
	require.False(t, caps.Has(pubsub.CapTransactionalPublish))

	mem := openBackend(t, srv.ClientURL()+"?storage=memory&prefix=MEM")
	require.False(t, mem.Capabilities().Has(pubsub.CapDurable), "memory storage is not durable")

	_, err := pubsub.Open(t.Context(), srv.ClientURL()+"?require=priority_order")
	require.ErrorIs(t, err, pubsub.ErrUnsupported)
}

// TestPublishDeduplicates checks that publishing a message id again (a
// publisher retry) does not store it twice.
func TestPublishDeduplicates(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL())
	const queue = "dedup"
	msg := message.NewMessage("same-id", []byte("once"))
	require.NoError(t, b.Publisher().Publish(queue, msg))
	require.NoError(t, b.Publisher().Publish(queue, msg))
	require.NoError(t, b.Publisher().Publish(queue, msg, message.NewMessage("other", []byte("x"))))
	st, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Pending)
}

// TestLeaseExtendedWhileHandling checks that a handler running longer than
// ack_wait keeps its message: no other subscription gets it meanwhile.
func TestLeaseExtendedWhileHandling(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL()+"?ack_wait=1s")
	const queue = "lease"
	slow, other := subscribe(t, b, queue), subscribe(t, b, queue)
	require.NoError(t, b.Publisher().Publish(queue, message.NewMessage("m", []byte("slow"))))
	var msg *message.Message
	select {
	case msg = <-slow:
	case msg = <-other:
		slow, other = other, slow
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	requireNothing(t, other, 3*time.Second) // three times ack_wait
	msg.Ack()
	requireNothing(t, slow, 1500*time.Millisecond)
}

// TestPrefetchGiveBackKeepsAttempts checks that messages received ahead
// of a subscription (prefetch) and never handed out come back, when it
// closes, without counting an attempt.
func TestPrefetchGiveBackKeepsAttempts(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url+"?prefetch=10")
	const queue = "prefetch"
	msgs := newMessages(10, "p")
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	first := pubsubtest.Receive(t, ch)
	require.Equal(t, msgs[0].UUID, first.UUID)
	first.Ack()
	second := pubsubtest.Receive(t, ch) // handed out, then the subscription ends unsettled
	cancel()
	for range ch {
	}

	other := openBackend(t, url)
	ch2 := subscribe(t, other, queue)
	for range 9 {
		msg := pubsubtest.Receive(t, ch2)
		want := 1
		if msg.UUID == second.UUID {
			want = 2 // it reached a handler once
		}
		require.Equal(t, want, pubsub.DeliveryOf(msg).Attempt, "attempt of %s", msg.UUID)
		msg.Ack()
	}
}

// TestFullQueueRefusesPublish checks that a queue at max_msgs makes
// Publish fail, naming the queue, rather than drop old messages.
func TestFullQueueRefusesPublish(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL()+"?max_msgs=2&publish_timeout=2s")
	const queue = "full"
	require.NoError(t, b.Publisher().Publish(queue, newMessages(2, "x")...))
	start := time.Now()
	err := b.Publisher().Publish(queue, newMessages(1, "x")...)
	require.Error(t, err)
	require.ErrorContains(t, err, queue)
	require.Less(t, time.Since(start), 2*time.Second, "a refusal is not retried until the timeout")
	st, err := b.Stats(t.Context(), queue)
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Pending)
}

// TestDottedQueueName checks that '.' in queue names maps onto streams and
// subjects without clashing with another name.
func TestDottedQueueName(t *testing.T) {
	t.Parallel()
	b := openBackend(t, server(t).ClientURL())
	for _, q := range []string{"a.b", "a", "a.b.c", "a_b"} {
		require.NoError(t, b.Publisher().Publish(q, message.NewMessage("id-"+q, []byte(q))))
	}
	for _, q := range []string{"a.b", "a", "a.b.c", "a_b"} {
		msg := pubsubtest.Receive(t, subscribe(t, b, q))
		require.Equal(t, q, string(msg.Payload))
		msg.Ack()
	}
	queues, err := b.ListQueues(t.Context())
	require.NoError(t, err)
	var names []string
	for _, q := range queues {
		names = append(names, q.Name)
	}
	require.Equal(t, []string{"a", "a.b", "a.b.c", "a_b"}, names)
}

// TestForeignMessages checks that messages published by a plain NATS
// client to a queue's subject are delivered, with their headers as
// metadata and an id stable across redeliveries.
func TestForeignMessages(t *testing.T) {
	t.Parallel()
	srv := server(t)
	b := openBackend(t, srv.ClientURL())
	const queue = "foreign"
	require.NoError(t, b.DeclareQueue(t.Context(), pubsub.QueueSpec{Name: queue}))

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	m := nats.NewMsg("QF.q." + queue)
	m.Data = []byte("raw")
	m.Header.Set("trace", "t-1")
	_, err = js.PublishMsg(t.Context(), m)
	require.NoError(t, err)

	ch := subscribe(t, b, queue)
	msg := pubsubtest.Receive(t, ch)
	require.Equal(t, "raw", string(msg.Payload))
	require.Equal(t, "t-1", msg.Metadata.Get("trace"))
	id := msg.UUID
	msg.Nack()
	again := pubsubtest.Receive(t, ch)
	require.Equal(t, id, again.UUID)
	again.Ack()
}

// TestPrefixIsolates checks that two prefixes on one server are separate
// sets of queues and dead letters.
func TestPrefixIsolates(t *testing.T) {
	t.Parallel()
	srv := server(t)
	a := openBackend(t, srv.ClientURL()+"?prefix=APP_A")
	bb := openBackend(t, srv.ClientURL()+"?prefix=APP_B")
	require.NoError(t, a.Publisher().Publish("shared", message.NewMessage("1", []byte("a"))))
	_, err := bb.Stats(t.Context(), "shared")
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
	qs, err := bb.ListQueues(t.Context())
	require.NoError(t, err)
	require.Empty(t, qs)
}

// TestSubscriptionSurvivesConsumerDeletion checks that a subscription
// recreates the queue's consumer when an operator deletes it.
func TestSubscriptionSurvivesConsumerDeletion(t *testing.T) {
	t.Parallel()
	srv := server(t)
	b := openBackend(t, srv.ClientURL())
	const queue = "recreated"
	ch := subscribe(t, b, queue)
	require.NoError(t, b.Publisher().Publish(queue, message.NewMessage("1", []byte("before"))))
	pubsubtest.Receive(t, ch).Ack()
	// Acks are asynchronous: one still on its way when the consumer goes
	// is lost with it, and the message comes back (at least once). Wait
	// for it to land: this test is about the consumer coming back.
	require.Eventually(t, func() bool {
		st, err := b.Stats(t.Context(), queue)
		return err == nil && st.InFlight == 0 && st.Pending == 0
	}, 10*time.Second, 5*time.Millisecond)

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteConsumer(t.Context(), "QF_"+queue, "workers"))

	require.NoError(t, b.Publisher().Publish(queue, message.NewMessage("2", []byte("after"))))
	msg := pubsubtest.Receive(t, ch)
	require.Equal(t, "after", string(msg.Payload))
	msg.Ack()
}

// TestConsumerStorage checks consumer_storage: a queue's consumer is
// created with the URL's storage, and a declaration with the other keeps
// the existing consumer's (JetStream cannot change it) and works on.
func TestConsumerStorage(t *testing.T) {
	t.Parallel()
	srv := server(t)
	url := srv.ClientURL()
	js := rawJetStream(t, url)
	inMemory := func(queue string) bool {
		t.Helper()
		c, err := js.Consumer(t.Context(), "QF_"+queue, "workers")
		require.NoError(t, err)
		return c.CachedInfo().Config.MemoryStorage
	}
	file := openBackend(t, url)
	mem := openBackend(t, url+"?consumer_storage=memory")
	require.NoError(t, file.DeclareQueue(t.Context(), pubsub.QueueSpec{Name: "on_file"}))
	require.NoError(t, mem.DeclareQueue(t.Context(), pubsub.QueueSpec{Name: "in_memory"}))
	require.False(t, inMemory("on_file"))
	require.True(t, inMemory("in_memory"))

	for _, c := range []struct {
		b     *pubsub.Backend
		queue string
	}{{mem, "on_file"}, {file, "in_memory"}} {
		require.NoError(t, c.b.DeclareQueue(t.Context(), pubsub.QueueSpec{Name: c.queue, MaxRetries: 1}), c.queue)
		ch := subscribe(t, c.b, c.queue)
		require.NoError(t, c.b.Publisher().Publish(c.queue, message.NewMessage("m-"+c.queue, []byte("x"))))
		pubsubtest.Receive(t, ch).Ack()
	}
	require.False(t, inMemory("on_file"), "kept")
	require.True(t, inMemory("in_memory"), "kept")
}

// TestAttemptsOutliveTheConsumer deletes a queue's consumer (as an
// operator may, and as a restart does with consumer_storage=memory)
// after a message failed twice: the consumer created again counts its
// deliveries from 1, and the message's next delivery is still its third
// attempt, with its first failure time kept.
func TestAttemptsOutliveTheConsumer(t *testing.T) {
	t.Parallel()
	srv := server(t)
	url := srv.ClientURL()
	b := openBackend(t, url)
	const queue = "outlived"
	require.NoError(t, b.DeclareQueue(t.Context(), pubsub.QueueSpec{Name: queue, MaxRetries: 5, RetryDelay: time.Millisecond}))
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	require.NoError(t, b.Publisher().Publish(queue, message.NewMessage("failing", []byte("x"))))
	var firstFailure time.Time
	for attempt := 1; attempt <= 2; attempt++ {
		msg := pubsubtest.Receive(t, ch)
		d := pubsub.DeliveryOf(msg)
		require.Equal(t, attempt, d.Attempt)
		if attempt == 2 {
			firstFailure = d.FirstFailureAt
		}
		msg.Nack()
	}
	// Taken by the subscription's receive ahead, or waiting: stop
	// consuming, so that the message waits in the queue (given back).
	cancel()
	require.Eventually(t, func() bool {
		st, err := b.Stats(t.Context(), queue)
		return err == nil && st.InFlight == 0 && st.Pending+st.Scheduled == 1
	}, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, rawJetStream(t, url).DeleteConsumer(t.Context(), "QF_"+queue, "workers"))
	other := openBackend(t, url) // a process that never saw the message
	msg := pubsubtest.Receive(t, subscribe(t, other, queue))
	d := pubsub.DeliveryOf(msg)
	require.Equal(t, 3, d.Attempt, "attempts before the consumer was deleted count")
	require.False(t, firstFailure.IsZero())
	require.True(t, d.FirstFailureAt.Equal(firstFailure), "first failure %s, was %s", d.FirstFailureAt, firstFailure)
	msg.Ack()
}
