package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// testCompetingConsumers checks that subscriptions of one queue, on one
// backend or several, compete: they work on different messages at the same
// time, and without failures every message is handled exactly once.
func (s *suite) testCompetingConsumers(t *testing.T) {
	const backends, perBackend, later = 3, 2, 300
	const subs = backends * perBackend
	queue := newQueueName()
	var chans []<-chan *message.Message
	for range backends {
		b := s.open(t)
		for range perBackend {
			chans = append(chans, subscribe(t, b, queue))
		}
	}
	pub := s.open(t)

	// Twice as many messages as subscriptions: each subscription must get
	// one while every other one holds its own unacked. A backend may claim
	// ahead for a subscription, but not so much that idle subscriptions
	// starve while messages wait.
	first := make([]*message.Message, 2*subs)
	for i := range first {
		first[i] = newMessage("first " + strconv.Itoa(i))
	}
	publish(t, pub, queue, first...)
	held := map[string]bool{}
	var heldMsgs []*message.Message
	for i, ch := range chans {
		msg := Receive(t, ch)
		require.False(t, held[msg.UUID], "subscription %d got message %s that another subscription holds", i, msg.UUID)
		held[msg.UUID] = true
		heldMsgs = append(heldMsgs, msg)
	}

	var (
		mu       sync.Mutex
		received = map[string]int{}
		all      = make(chan struct{})
		total    = len(first) + later
	)
	record := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		received[id]++
		// Once: a later delivery of a message seen is no duplicate when
		// it comes after the test ended (about once in 200 runs on mem
		// with -race, where it used to close all again and panic): the
		// last message is recorded before its Ack, the test can end and
		// cancel that subscription in between, and the engine then
		// returns the message as interrupted, to a subscription still
		// open. A duplicate before the check below fails it.
		if received[id] == 1 && len(received) == total {
			close(all)
		}
	}
	for _, msg := range heldMsgs {
		record(msg.UUID)
		msg.Ack()
	}
	for _, ch := range chans {
		go func() {
			for msg := range ch {
				record(msg.UUID)
				msg.Ack()
			}
		}()
	}
	published := ids(first)
	for i := 0; i < later; i += 10 {
		batch := make([]*message.Message, 10)
		for j := range batch {
			batch[j] = newMessage("later " + strconv.Itoa(i+j))
		}
		publish(t, pub, queue, batch...)
		published = append(published, ids(batch)...)
	}
	select {
	case <-all:
	case <-time.After(receiveTimeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("received %d of %d messages within %s", len(received), total, receiveTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range published {
		require.Equal(t, 1, received[id], "times message %s was handled", id)
	}
}

// testNackWithDelay checks that a nack with a retry delay brings the
// message back no sooner than the delay, and that the queue's other
// messages are delivered meanwhile.
func (s *suite) testNackWithDelay(t *testing.T) {
	if !s.caps.Has(pubsub.CapDelayedRedelivery) {
		t.Skip("backend does not declare delayed_redelivery")
	}
	const delay = time.Second
	b := s.open(t)
	queue := newQueueName()
	ch := subscribe(t, b, queue)

	failing := newMessage("failing")
	publish(t, b, queue, failing)
	msg := Receive(t, ch)
	require.Equal(t, failing.UUID, msg.UUID)
	d := delivery(t, msg, queue)
	require.Equal(t, 1, d.Attempt)
	require.True(t, d.FirstFailureAt.IsZero(), "FirstFailureAt of a first delivery")

	// The others are waiting in the queue before the failing message is
	// nacked: a backend that sleeps out the delay in the subscription, or
	// blocks the queue behind the failing message, delivers them late.
	others := []*message.Message{newMessage("other 1"), newMessage("other 2"), newMessage("other 3")}
	publish(t, b, queue, others...)
	d.RetryAfter(delay, errors.New("try again later"))
	nackedAt := time.Now()
	msg.Nack()

	want := map[string]bool{}
	for _, o := range others {
		want[o.UUID] = true
	}
	for i := range others {
		got := Receive(t, ch)
		require.NotEqual(t, failing.UUID, got.UUID, "the failing message came back before the queue's other messages")
		require.True(t, want[got.UUID], "unexpected message %s", got.UUID)
		delete(want, got.UUID)
		if i == 0 {
			require.Less(t, time.Since(nackedAt), delay, "the queue's other messages waited for the failing message's retry delay")
		}
		require.Equal(t, 1, delivery(t, got, queue).Attempt)
		got.Ack()
	}

	again := Receive(t, ch)
	require.Equal(t, failing.UUID, again.UUID)
	require.GreaterOrEqual(t, time.Since(nackedAt), delay, "redelivered before the retry delay")
	d2 := delivery(t, again, queue)
	require.Equal(t, 2, d2.Attempt)
	require.False(t, d2.FirstFailureAt.IsZero(), "FirstFailureAt after a failure")
	require.Equal(t, "failing", string(again.Payload))
	again.Ack()
	requireCounts(t, b, queue, counts{})
}

// testPlainNack checks that a nack without a delay redelivers the message.
func (s *suite) testPlainNack(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	ch := subscribe(t, b, queue)
	sent := newMessage("plain nack")
	sent.Metadata.Set("key", "value")
	publish(t, b, queue, sent)

	msg := Receive(t, ch)
	require.Equal(t, sent.UUID, msg.UUID)
	require.Equal(t, 1, delivery(t, msg, queue).Attempt)
	msg.Nack()

	again := Receive(t, ch)
	require.Equal(t, sent.UUID, again.UUID)
	d := delivery(t, again, queue)
	require.Equal(t, 2, d.Attempt)
	require.False(t, d.FirstFailureAt.IsZero(), "FirstFailureAt after a nack")
	require.Equal(t, "plain nack", string(again.Payload))
	require.Equal(t, "value", again.Metadata.Get("key"))
	again.Ack()
	requireCounts(t, b, queue, counts{})
}

// testAttemptCounting checks that the attempt number and the first failure
// time travel with the message from one backend instance to the next, as
// they would between processes.
func (s *suite) testAttemptCounting(t *testing.T) {
	queue := newQueueName()
	pub := s.open(t)
	sent := newMessage("attempts")
	publish(t, pub, queue, sent)

	var firstFailure time.Time
	for attempt := 1; attempt <= 3; attempt++ {
		b := s.open(t)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := b.Subscriber().Subscribe(ctx, queue)
		require.NoError(t, err)
		msg := Receive(t, ch)
		require.Equal(t, sent.UUID, msg.UUID)
		d := delivery(t, msg, queue)
		require.Equal(t, attempt, d.Attempt, "Delivery.Attempt")
		switch attempt {
		case 1:
			require.True(t, d.FirstFailureAt.IsZero(), "FirstFailureAt before any failure")
			if s.caps.Has(pubsub.CapDelayedRedelivery) {
				d.RetryAfter(50*time.Millisecond, errors.New("first failure"))
			}
			msg.Nack()
		case 2:
			require.False(t, d.FirstFailureAt.IsZero(), "FirstFailureAt after a failure")
			firstFailure = d.FirstFailureAt
			msg.Nack()
		case 3:
			require.WithinDuration(t, firstFailure, d.FirstFailureAt, time.Millisecond, "FirstFailureAt must not move on later failures")
			msg.Ack()
		}
		// Cancelling right after settling is what a router does on
		// shutdown: a settle that happened first must be honoured.
		cancel()
		waitClosed(t, ch)
	}
	requireCounts(t, pub, queue, counts{})
}

// testDeadLetters checks the move to the dead-letter queue (on Ack and on
// Nack), what a dead letter records, listing filters and order, and
// retrying one by id and the rest by queue.
func (s *suite) testDeadLetters(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	ch := subscribe(t, b, queue)

	// m1 fails once, then is dead-lettered on its second delivery via Ack.
	m1 := newMessage(`{"n":1}`)
	m1.Metadata.Set("trace", "t-1")
	beforeFailure := time.Now()
	publish(t, b, queue, m1)
	msg := Receive(t, ch)
	require.Equal(t, m1.UUID, msg.UUID)
	d := delivery(t, msg, queue)
	if s.caps.Has(pubsub.CapDelayedRedelivery) {
		d.RetryAfter(50*time.Millisecond, errors.New("first failure"))
	}
	msg.Nack()
	msg = Receive(t, ch)
	require.Equal(t, m1.UUID, msg.UUID)
	d = delivery(t, msg, queue)
	require.Equal(t, 2, d.Attempt)
	d.MarkDeadLetter(pubsub.DeadLetterReason{Error: "boom", Handler: "handle_proposal_for_consensus", Service: "centralcloud"})
	msg.Ack()
	require.Eventually(t, func() bool {
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: queue})
		return err == nil && len(dls) == 1
	}, eventually, tick, "m1 listed as a dead letter")

	// m2 is dead-lettered on its first delivery via Nack.
	m2 := newMessage(`{"n":2}`)
	publish(t, b, queue, m2)
	msg = Receive(t, ch)
	require.Equal(t, m2.UUID, msg.UUID)
	delivery(t, msg, queue).MarkDeadLetter(pubsub.DeadLetterReason{Error: "bad payload", Handler: "h2", Service: "singularity"})
	msg.Nack()
	require.Eventually(t, func() bool {
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: queue})
		return err == nil && len(dls) == 2
	}, eventually, tick, "m2 listed as a dead letter")
	afterFailure := time.Now()

	dls := listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue})
	require.Equal(t, []string{m2.UUID, m1.UUID}, deadLetterIDs(dls), "dead letters newest first")
	dl1, dl2 := dls[1], dls[0]
	require.Equal(t, queue, dl1.Queue)
	require.Equal(t, `{"n":1}`, string(dl1.Payload))
	require.Equal(t, "t-1", dl1.Metadata["trace"])
	require.Equal(t, "boom", dl1.Error)
	require.Equal(t, 2, dl1.Attempts)
	require.Equal(t, "handle_proposal_for_consensus", dl1.Handler)
	require.Equal(t, "centralcloud", dl1.Service)
	require.False(t, dl1.FirstFailureAt.IsZero(), "FirstFailureAt")
	require.False(t, dl1.LastFailureAt.IsZero(), "LastFailureAt")
	require.False(t, dl1.LastFailureAt.Before(dl1.FirstFailureAt), "LastFailureAt %s before FirstFailureAt %s", dl1.LastFailureAt, dl1.FirstFailureAt)
	require.WithinRange(t, dl1.FirstFailureAt, beforeFailure.Add(-time.Second), afterFailure.Add(time.Second))
	require.False(t, dl1.CreatedAt.IsZero(), "CreatedAt")

	require.Equal(t, queue, dl2.Queue)
	require.Equal(t, "bad payload", dl2.Error)
	require.Equal(t, 1, dl2.Attempts)
	require.Equal(t, "h2", dl2.Handler)
	require.Equal(t, "singularity", dl2.Service)
	require.False(t, dl2.FirstFailureAt.IsZero(), "FirstFailureAt of a message that failed once")
	require.False(t, dl2.LastFailureAt.Before(dl2.FirstFailureAt))

	requireCounts(t, b, queue, counts{DeadLetters: 2})
	require.Equal(t, []string{m1.UUID}, deadLetterIDs(listDeadLetters(t, b, pubsub.DeadLetterQuery{IDs: []string{m1.UUID}})))
	require.Equal(t, []string{m2.UUID}, deadLetterIDs(listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue, Limit: 1})))
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: newQueueName()}))

	// Retry one by id: it comes back as new, with payload and metadata.
	n, err := b.RetryDeadLetters(ctx, pubsub.DeadLetterQuery{IDs: []string{m1.UUID}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{m2.UUID}, deadLetterIDs(listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue})))
	msg = Receive(t, ch)
	require.Equal(t, m1.UUID, msg.UUID)
	d = delivery(t, msg, queue)
	require.Equal(t, 1, d.Attempt, "attempts reset by a dead-letter retry")
	require.True(t, d.FirstFailureAt.IsZero(), "FirstFailureAt reset by a dead-letter retry")
	require.Equal(t, `{"n":1}`, string(msg.Payload))
	require.Equal(t, "t-1", msg.Metadata.Get("trace"))
	msg.Ack()
	requireCounts(t, b, queue, counts{DeadLetters: 1})

	// Retry the rest by queue.
	n, err = b.RetryDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: queue})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	msg = Receive(t, ch)
	require.Equal(t, m2.UUID, msg.UUID)
	require.Equal(t, 1, delivery(t, msg, queue).Attempt)
	msg.Ack()
	requireCounts(t, b, queue, counts{})
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: queue}))
	n, err = b.RetryDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: queue})
	require.NoError(t, err)
	require.Zero(t, n, "retrying an empty selection")
}

// testPurgeDeadLettersByQueue checks that purging one queue's dead letters
// leaves the others, and purging by id.
func (s *suite) testPurgeDeadLettersByQueue(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	qa, qb := newQueueName(), newQueueName()
	deadLetterN(t, b, qa, 2)
	idsB := deadLetterN(t, b, qb, 2)

	n, err := b.PurgeDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: qa})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: qa}))
	require.Len(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: qb}), 2)
	requireCounts(t, b, qa, counts{})

	n, err = b.PurgeDeadLetters(ctx, pubsub.DeadLetterQuery{IDs: idsB[:1]})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, idsB[1:], deadLetterIDs(listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: qb})))
	requireCounts(t, b, qb, counts{DeadLetters: 1})
	// Purged messages are gone, not back on their queue.
	requireCounts(t, b, qa, counts{})
}

// testDeadLettersAll retries and purges every dead letter. It runs alone.
func (s *suite) testDeadLettersAll(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	qa, qb := newQueueName(), newQueueName()
	idA := deadLetterN(t, b, qa, 1)[0]
	idB := deadLetterN(t, b, qb, 1)[0]

	n, err := b.RetryDeadLetters(ctx, pubsub.DeadLetterQuery{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 2, "retry all")
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{}), "dead letters after retry all")
	requireCounts(t, b, qa, counts{Pending: 1})
	requireCounts(t, b, qb, counts{Pending: 1})

	for _, c := range []struct{ queue, id string }{{qa, idA}, {qb, idB}} {
		ch := subscribe(t, b, c.queue)
		msg := Receive(t, ch)
		require.Equal(t, c.id, msg.UUID)
		d := delivery(t, msg, c.queue)
		require.Equal(t, 1, d.Attempt)
		d.MarkDeadLetter(pubsub.DeadLetterReason{Error: "again"})
		msg.Ack()
		requireCounts(t, b, c.queue, counts{DeadLetters: 1})
	}

	n, err = b.PurgeDeadLetters(ctx, pubsub.DeadLetterQuery{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 2, "purge all")
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{}), "dead letters after purge all")
	requireCounts(t, b, qa, counts{})
	requireCounts(t, b, qb, counts{})
}

// priorityMessage returns a message with an explicit priority, or none when
// p is nil.
func priorityMessage(name string, p *pubsub.Priority) *message.Message {
	msg := newMessage(name)
	if p != nil {
		pubsub.SetPriority(msg, *p)
	}
	return msg
}

func prio(p pubsub.Priority) *pubsub.Priority { return &p }

// testPriorityOrder checks delivery order: per-message priority, else the
// queue's declared priority; higher first, then oldest.
func (s *suite) testPriorityOrder(t *testing.T) {
	if !s.caps.Has(pubsub.CapPriorityOrder) {
		t.Log("backend does not declare priority_order: it delivers in arrival order only, and high-priority queues get their own workers instead")
		t.Skip("backend does not declare priority_order")
	}
	ctx := context.Background()
	b := s.open(t)

	t.Run("DeclaredHighPriorityQueue", func(t *testing.T) {
		queue := newQueueName()
		require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, Priority: pubsub.PriorityHigh}))
		// One Publish call each, so "oldest" is across calls.
		a := priorityMessage("a", nil) // the queue's: 10
		bb := priorityMessage("b", prio(20))
		c := priorityMessage("c", prio(pubsub.PriorityNormal))
		d := priorityMessage("d", nil)
		e := priorityMessage("e", prio(20))
		f := priorityMessage("f", prio(5))
		for _, m := range []*message.Message{a, bb, c, d, e, f} {
			publish(t, b, queue, m)
		}
		want := []*message.Message{bb, e, a, d, f, c}
		wantPrio := []pubsub.Priority{20, 20, pubsub.PriorityHigh, pubsub.PriorityHigh, 5, pubsub.PriorityNormal}
		checkOrder(t, b, queue, want, wantPrio)
	})

	t.Run("PerMessagePriorityInOneBatch", func(t *testing.T) {
		queue := newQueueName() // undeclared: normal priority
		g := priorityMessage("g", nil)
		h := priorityMessage("h", prio(3))
		i := priorityMessage("i", prio(-1))
		j := priorityMessage("j", nil)
		k := priorityMessage("k", prio(3))
		publish(t, b, queue, g, h, i, j, k)
		checkOrder(t, b, queue, []*message.Message{h, k, g, j, i}, []pubsub.Priority{3, 3, 0, 0, -1})
	})
}

// checkOrder checks that the pending listing and then a single consumer
// see want in that order, with those priorities.
func checkOrder(t *testing.T, b *pubsub.Backend, queue string, want []*message.Message, wantPrio []pubsub.Priority) {
	t.Helper()
	pending, err := b.ListPending(context.Background(), queue, 100)
	require.NoError(t, err)
	require.Equal(t, ids(want), pendingIDs(pending), "pending listing order")
	for i, p := range pending {
		require.Equal(t, wantPrio[i], p.Priority, "priority of pending message %s (%s)", p.ID, p.Payload)
	}
	ch := subscribe(t, b, queue)
	for _, w := range want {
		msg := Receive(t, ch)
		require.Equal(t, w.UUID, msg.UUID, "delivery order: want %s, got %s", w.Payload, msg.Payload)
		msg.Ack()
	}
	requireCounts(t, b, queue, counts{})
}

// testOrderThroughGiveBacks checks that messages the engine received
// ahead and gave back (its consumer stalled past the prefetch hold) come
// again in their order, and with their attempt not counted: a consumer
// alternates fast bursts, during which the engine receives ahead, with
// stalls, after which it gives back what it holds.
func (s *suite) testOrderThroughGiveBacks(t *testing.T) {
	const total, stall = 60, 350 * time.Millisecond // stall: past the 200ms prefetch hold
	b := s.open(t)
	queue := newQueueName()
	msgs := numbered(total, "order")
	publish(t, b, queue, msgs...)
	ch := subscribe(t, b, queue)
	burst, left := 3, 3
	for i, w := range msgs {
		msg := Receive(t, ch)
		require.Equal(t, w.UUID, msg.UUID, "message %d: want %s, got %s", i, w.Payload, msg.Payload)
		require.Equal(t, 1, pubsub.DeliveryOf(msg).Attempt, "attempt of %s: given back, not counted", msg.Payload)
		if left--; left == 0 {
			time.Sleep(stall)
			burst = burst%7 + 2 // bursts of 2 to 8, so stalls fall at every offset of a batch
			left = burst
		}
		msg.Ack()
	}
	requireCounts(t, b, queue, counts{})
}

// testConsumeWhileRead checks that admin reads do not starve the
// backend's own subscriptions: while a goroutine reads the queue's stats
// and pending listing back to back, as a dashboard polling hard would,
// four consumers still get every message.
func (s *suite) testConsumeWhileRead(t *testing.T) {
	// Starved, NATS consumed about 20 messages a second here; fed, all
	// 500 take a second or two.
	const total, bound = 500, 20 * time.Second
	b := s.open(t)
	queue := newQueueName()
	publish(t, b, queue, numbered(total, "read")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if _, err := b.Stats(ctx, queue); err != nil && ctx.Err() == nil {
				reads <- err
				return
			}
			if _, err := b.ListPending(ctx, queue, 10); err != nil && ctx.Err() == nil {
				reads <- err
				return
			}
		}
		reads <- nil
	}()
	var got atomic.Int64
	done := make(chan struct{})
	for range 4 {
		ch := subscribe(t, b, queue)
		go func() {
			for msg := range ch {
				msg.Ack()
				if got.Add(1) == total {
					close(done)
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("%d of %d messages consumed in %s while stats were read", got.Load(), total, bound)
	}
	cancel()
	require.NoError(t, <-reads)
	requireCounts(t, b, queue, counts{})
}

// testStatsAndPending checks that stats and the pending listing are true:
// what they say is what a consumer then receives, step by step.
func (s *suite) testStatsAndPending(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	byPriority := s.caps.Has(pubsub.CapPriorityOrder)
	delayed := s.caps.Has(pubsub.CapDelayedRedelivery)
	dead := s.caps.Has(pubsub.CapDeadLetters)

	before := time.Now()
	priorities := []pubsub.Priority{0, 2, 0, 1, 2, 1, 0, 2}
	msgs := make([]*message.Message, len(priorities))
	for i := range msgs {
		msgs[i] = newMessage("stats " + strconv.Itoa(i))
		msgs[i].Metadata.Set("n", strconv.Itoa(i))
		if byPriority {
			pubsub.SetPriority(msgs[i], priorities[i])
		}
	}
	// Five single publishes, then one batch of three.
	for _, m := range msgs[:5] {
		publish(t, b, queue, m)
	}
	publish(t, b, queue, msgs[5:]...)
	want := slices.Clone(msgs)
	if byPriority {
		slices.SortStableFunc(want, func(x, y *message.Message) int {
			px, _, _ := pubsub.PriorityOf(x)
			py, _, _ := pubsub.PriorityOf(y)
			return int(py - px)
		})
	}

	// Right after Publish returns, counts are exact: no waiting.
	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	require.Equal(t, queue, st.Queue)
	require.Equal(t, counts{Pending: 8}, countsOf(st))
	require.Positive(t, st.OldestPendingAge, "OldestPendingAge with messages pending")
	require.LessOrEqual(t, st.OldestPendingAge, time.Since(before)+time.Second, "OldestPendingAge")

	pending, err := b.ListPending(ctx, queue, 100)
	require.NoError(t, err)
	require.Equal(t, ids(want), pendingIDs(pending), "pending listing: delivery order")
	for i, p := range pending {
		w := want[i]
		require.Equal(t, queue, p.Queue)
		require.Equal(t, string(w.Payload), string(p.Payload))
		require.Equal(t, w.Metadata.Get("n"), p.Metadata["n"])
		require.Zero(t, p.Attempts, "attempts of a message never delivered")
		require.True(t, p.AvailableAt.IsZero(), "AvailableAt of a message ready now")
		require.WithinRange(t, p.CreatedAt, before.Add(-time.Second), time.Now().Add(time.Second))
		if byPriority {
			wp, _, _ := pubsub.PriorityOf(w)
			require.Equal(t, wp, p.Priority)
		}
	}
	pending, err = b.ListPending(ctx, queue, 3)
	require.NoError(t, err)
	require.Equal(t, ids(want[:3]), pendingIDs(pending), "pending listing with a limit")

	// While the consumer holds a message unsettled, the subscription holds
	// nothing else: the listing is exactly what comes next.
	ch := subscribe(t, b, queue)
	next := func(i int) *message.Message {
		t.Helper()
		msg := Receive(t, ch)
		require.Equal(t, want[i].UUID, msg.UUID, "message %d in delivery order (want %s, got %s)", i, want[i].Payload, msg.Payload)
		return msg
	}
	msg := next(0)
	requireCounts(t, b, queue, counts{Pending: 7, InFlight: 1})
	pending, err = b.ListPending(ctx, queue, 100)
	require.NoError(t, err)
	require.Equal(t, ids(want[1:]), pendingIDs(pending), "pending listing while one message is in flight")
	msg.Ack()

	var scheduled, deadLetters int64
	msg = next(1)
	requireCounts(t, b, queue, counts{Pending: 6, InFlight: 1})
	if delayed {
		delivery(t, msg, queue).RetryAfter(time.Hour, errors.New("later"))
		msg.Nack()
		scheduled = 1
	} else {
		msg.Ack()
	}
	retried := msg.UUID

	msg = next(2)
	requireCounts(t, b, queue, counts{Pending: 5, InFlight: 1, Scheduled: scheduled})
	if dead {
		delivery(t, msg, queue).MarkDeadLetter(pubsub.DeadLetterReason{Error: "dead"})
		deadLetters = 1
	}
	msg.Ack()

	msg = next(3)
	st = requireCounts(t, b, queue, counts{Pending: 4, InFlight: 1, Scheduled: scheduled, DeadLetters: deadLetters})
	require.Positive(t, st.OldestPendingAge)
	pending, err = b.ListPending(ctx, queue, 100)
	require.NoError(t, err)
	// A backend may list the message waiting for its retry (with its
	// AvailableAt); it is not what a consumer receives next.
	ready := slices.DeleteFunc(pending, func(p pubsub.PendingMessage) bool { return p.ID == retried })
	require.Equal(t, ids(want[4:]), pendingIDs(ready), "pending listing after a retry and a dead letter")
	msg.Ack()

	for i := 4; i < len(want); i++ {
		next(i).Ack()
	}
	st = requireCounts(t, b, queue, counts{Scheduled: scheduled, DeadLetters: deadLetters})
	require.Zero(t, st.OldestPendingAge, "OldestPendingAge with nothing pending")
}

// testCloseUnderLoad closes a backend while publishers and consumers run
// on it, then drains the queue through another backend: every message
// whose Publish returned nil is received, including the one a consumer
// held unacked when the backend closed.
func (s *suite) testCloseUnderLoad(t *testing.T) {
	const publishers, consumers, perPublisherCap = 3, 3, 20000
	queue := newQueueName()
	a := s.open(t)

	var (
		mu        sync.Mutex
		published = map[string]bool{}
		received  = map[string]bool{}
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var consumersDone sync.WaitGroup
	for range consumers {
		ch, err := a.Subscriber().Subscribe(ctx, queue)
		require.NoError(t, err)
		consumersDone.Add(1)
		go func() {
			defer consumersDone.Done()
			for msg := range ch {
				mu.Lock()
				received[msg.UUID] = true
				mu.Unlock()
				msg.Ack()
			}
		}()
	}
	holderCh, err := a.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	heldCh := make(chan *message.Message, 1)
	consumersDone.Add(1)
	go func() {
		defer consumersDone.Done()
		heldCh <- <-holderCh
		for range holderCh {
			// Nothing else may come while the held message is unsettled;
			// drain anyway so that a misbehaving backend cannot hang Close.
		}
	}()

	pubErrs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			for i := 0; i < perPublisherCap; {
				batch := []*message.Message{newMessage(fmt.Sprintf("p%d-%d", p, i))}
				if i%2 == 1 {
					batch = append(batch, newMessage(fmt.Sprintf("p%d-%d", p, i+1)), newMessage(fmt.Sprintf("p%d-%d", p, i+2)))
				}
				if err := a.Publisher().Publish(queue, batch...); err != nil {
					pubErrs <- err
					return
				}
				mu.Lock()
				for _, m := range batch {
					published[m.UUID] = true
				}
				mu.Unlock()
				i += len(batch)
			}
			pubErrs <- nil
		}()
	}

	var held *message.Message
	select {
	case held = <-heldCh:
		require.NotNil(t, held, "holder subscription closed without a message")
	case <-time.After(receiveTimeout):
		t.Fatal("the holder subscription got no message")
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) >= 200
	}, receiveTimeout, time.Millisecond, "consumers received too little before Close")

	require.NoError(t, a.Close(), "Close under load")
	doneCh := make(chan struct{})
	go func() { consumersDone.Wait(); close(doneCh) }()
	select {
	case <-doneCh:
	case <-time.After(receiveTimeout):
		t.Fatal("subscription channels not closed after the backend closed")
	}
	for range publishers {
		select {
		case err := <-pubErrs:
			if err != nil {
				require.ErrorIs(t, err, pubsub.ErrClosed, "Publish on a closed backend")
			}
		case <-time.After(receiveTimeout):
			t.Fatal("a publisher is stuck after Close")
		}
	}
	// Settling after Close is too late: the message must come back.
	held.Ack()

	mu.Lock()
	missing := map[string]bool{held.UUID: true}
	for id := range published {
		if !received[id] {
			missing[id] = true
		}
	}
	total := len(published)
	mu.Unlock()
	t.Logf("published %d messages; %d left to receive after Close", total, len(missing))

	b := s.open(t)
	ch := subscribe(t, b, queue)
	timeout := time.After(3 * receiveTimeout)
	for len(missing) > 0 {
		select {
		case msg, ok := <-ch:
			require.True(t, ok)
			delete(missing, msg.UUID)
			msg.Ack()
		case <-timeout:
			_, heldMissing := missing[held.UUID]
			t.Fatalf("%d of %d published messages lost across Close (the held one among them: %t)", len(missing), total, heldMissing)
		}
	}
}

// testCloseIdempotent checks Close: repeated calls succeed, subscriptions
// end, and later use fails with ErrClosed.
func (s *suite) testCloseIdempotent(t *testing.T) {
	ctx := context.Background()
	queue := newQueueName()

	t.Run("Backend", func(t *testing.T) {
		b := s.open(t)
		ch, err := b.Subscriber().Subscribe(ctx, queue)
		require.NoError(t, err)
		require.NoError(t, b.Close())
		require.NoError(t, b.Close())
		waitClosed(t, ch)
		require.ErrorIs(t, b.Publisher().Publish(queue, newMessage("late")), pubsub.ErrClosed)
		_, err = b.Subscriber().Subscribe(ctx, queue)
		require.ErrorIs(t, err, pubsub.ErrClosed)
		_, err = b.Stats(ctx, queue)
		require.ErrorIs(t, err, pubsub.ErrClosed)
		require.NoError(t, b.Publisher().Close())
		require.NoError(t, b.Subscriber().Close())
	})

	t.Run("PublisherAndSubscriber", func(t *testing.T) {
		b := s.open(t)
		ch, err := b.Subscriber().Subscribe(ctx, queue)
		require.NoError(t, err)
		require.NoError(t, b.Publisher().Close())
		require.NoError(t, b.Publisher().Close())
		require.ErrorIs(t, b.Publisher().Publish(queue, newMessage("late")), pubsub.ErrClosed)
		require.NoError(t, b.Subscriber().Close())
		require.NoError(t, b.Subscriber().Close())
		waitClosed(t, ch)
		_, err = b.Subscriber().Subscribe(ctx, queue)
		require.ErrorIs(t, err, pubsub.ErrClosed)
		require.NoError(t, b.Close())
		require.NoError(t, b.Close())
	})
}

// testUnknownQueue checks which queues a backend knows: declared,
// published to or subscribed to, and no others.
func (s *suite) testUnknownQueue(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)

	unknown := newQueueName()
	_, err := b.Stats(ctx, unknown)
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)
	require.ErrorContains(t, err, unknown, "the error names the queue")
	_, err = b.ListPending(ctx, unknown, 10)
	require.ErrorIs(t, err, pubsub.ErrQueueNotFound)

	declared, subscribed, published := newQueueName(), newQueueName(), newQueueName()
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: declared}))
	subscribe(t, b, subscribed)
	publish(t, b, published, newMessage("x"))

	for _, q := range []string{declared, subscribed} {
		st, err := b.Stats(ctx, q)
		require.NoError(t, err, "stats of known queue %s", q)
		require.Equal(t, q, st.Queue)
		require.Equal(t, counts{}, countsOf(st))
		require.Zero(t, st.OldestPendingAge)
		pending, err := b.ListPending(ctx, q, 10)
		require.NoError(t, err)
		require.Empty(t, pending)
	}
	st, err := b.Stats(ctx, published)
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending)

	queues, err := b.ListQueues(ctx)
	require.NoError(t, err)
	names := make([]string, len(queues))
	for i, q := range queues {
		names[i] = q.Name
	}
	for _, q := range []string{declared, subscribed, published} {
		require.Contains(t, names, q)
	}
	require.NotContains(t, names, unknown)
}

// testDeclareQueue checks that a declared queue's settings are listed, and
// that declaring it again updates them.
func (s *suite) testDeclareQueue(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	queue := newQueueName()
	find := func() pubsub.QueueInfo {
		t.Helper()
		queues, err := b.ListQueues(ctx)
		require.NoError(t, err)
		require.True(t, slices.IsSortedFunc(queues, func(x, y pubsub.QueueInfo) int { return strings.Compare(x.Name, y.Name) }), "ListQueues is ordered by name")
		i := slices.IndexFunc(queues, func(q pubsub.QueueInfo) bool { return q.Name == queue })
		require.GreaterOrEqual(t, i, 0, "declared queue %s not listed", queue)
		return queues[i]
	}

	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, Priority: pubsub.PriorityHigh, MaxRetries: 5, RetryDelay: 250 * time.Millisecond}))
	info := find()
	require.Equal(t, pubsub.PriorityHigh, info.Priority)
	require.Equal(t, 5, info.MaxRetries)
	require.Equal(t, 250*time.Millisecond, info.RetryDelay)

	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue, Priority: pubsub.PriorityNormal, MaxRetries: 7, RetryDelay: 2 * time.Second}))
	info = find()
	require.Equal(t, pubsub.PriorityNormal, info.Priority)
	require.Equal(t, 7, info.MaxRetries)
	require.Equal(t, 2*time.Second, info.RetryDelay)

	// Another instance sees the same declaration.
	other := s.open(t)
	queues, err := other.ListQueues(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(queues, func(q pubsub.QueueInfo) bool { return q.Name == queue })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, 7, queues[i].MaxRetries)
}

// testInvalidQueueName checks that malformed queue names fail everywhere
// with ErrInvalidQueueName, and that the longest valid name works.
func (s *suite) testInvalidQueueName(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	for _, name := range []string{"", "has space", "a/b", "a*b", "a>b", "ünïcode", strings.Repeat("a", 201)} {
		err := b.Publisher().Publish(name, newMessage("x"))
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, "Publish to %q", name)
		_, err = b.Subscriber().Subscribe(ctx, name)
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, "Subscribe to %q", name)
		_, err = b.Stats(ctx, name)
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, "Stats of %q", name)
		_, err = b.ListPending(ctx, name, 1)
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, "ListPending of %q", name)
		err = b.DeclareQueue(ctx, pubsub.QueueSpec{Name: name})
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, "DeclareQueue of %q", name)
	}

	long := newQueueName()
	long += strings.Repeat("x", 200-len(long))
	ch := subscribe(t, b, long)
	sent := newMessage("long name")
	publish(t, b, long, sent)
	msg := Receive(t, ch)
	require.Equal(t, sent.UUID, msg.UUID)
	delivery(t, msg, long)
	msg.Ack()
	requireCounts(t, b, long, counts{})
}
