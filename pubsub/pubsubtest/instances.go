package pubsubtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// newService returns a fresh service name, so that cases running in
// parallel on one storage do not see each other's instances.
func newService() string { return "svc-" + uuid.NewString()[:8] }

// register registers instance id of service as this process would.
func register(t *testing.T, b *pubsub.Backend, service, id string) *pubsub.Instance {
	t.Helper()
	host, _ := os.Hostname()
	inst := &pubsub.Instance{Service: service, ID: id, Host: host, PID: os.Getpid(), Nonce: uuid.NewString()}
	require.NoError(t, b.RegisterInstance(context.Background(), inst, time.Minute))
	return inst
}

// receiveN receives n messages from ch, acking each, and returns their
// payloads in arrival order.
func receiveN(t *testing.T, ch <-chan *message.Message, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		m := Receive(t, ch)
		out = append(out, string(m.Payload))
		m.Ack()
	}
	return out
}

// requireNothingMore fails when ch delivers anything within a short while.
func requireNothingMore(t *testing.T, ch <-chan *message.Message, who string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("%s received %q, meant for nobody or for another instance", who, m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

// testAddressed checks addressed delivery: three instances, 100 messages
// each, every instance receives exactly its own, none twice.
func (s *suite) testAddressed(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	ids := []string{"i1", "i2", "i3"}
	chans := map[string]<-chan *message.Message{}
	for _, id := range ids {
		chans[id] = subscribe(t, s.open(t), pubsub.InstanceQueue(queue, id))
	}
	const n = 100
	for _, id := range ids {
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = newMessage(fmt.Sprintf("%s-%d", id, i))
		}
		require.NoError(t, b.PublishTo(queue, id, msgs...))
	}
	for _, id := range ids {
		got := receiveN(t, chans[id], n)
		slices.Sort(got)
		require.Equal(t, n, len(slices.Compact(got)), "instance %s: none twice", id)
		for _, p := range got {
			require.Regexp(t, "^"+id+"-", p, "instance %s got another's message", id)
		}
	}
	for _, id := range ids {
		requireNothingMore(t, chans[id], id)
	}
	st, err := b.Stats(context.Background(), pubsub.InstanceQueue(queue, "i2"))
	require.NoError(t, err)
	require.Zero(t, st.Pending)
}

// testBroadcast checks broadcast delivery: one copy to each registered
// instance, one of them stopped at publish time and started again; an
// instance that joins later gets the latest message only.
func (s *suite) testBroadcast(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	service, queue := newService(), newQueueName()
	for _, id := range []string{"b1", "b2", "b3"} {
		register(t, b, service, id)
	}
	live := map[string]<-chan *message.Message{
		"b1": subscribe(t, s.open(t), pubsub.InstanceQueue(queue, "b1")),
		"b2": subscribe(t, s.open(t), pubsub.InstanceQueue(queue, "b2")),
	}
	sent, err := b.Broadcast(ctx, queue, service, time.Hour, true, newMessage("profile-1"), newMessage("profile-2"))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"b1", "b2", "b3"}, sent)
	for id, ch := range live {
		require.Equal(t, []string{"profile-1", "profile-2"}, receiveN(t, ch, 2), "instance %s", id)
	}
	// b3 was down: its copies waited for it.
	require.Equal(t, []string{"profile-1", "profile-2"}, receiveN(t, subscribe(t, s.open(t), pubsub.InstanceQueue(queue, "b3")), 2))

	// b4 joins later: it gets the latest, not the history.
	register(t, b, service, "b4")
	ok, err := b.ReplayLatest(ctx, queue, "b4")
	require.NoError(t, err)
	require.True(t, ok)
	late := subscribe(t, s.open(t), pubsub.InstanceQueue(queue, "b4"))
	require.Equal(t, []string{"profile-2"}, receiveN(t, late, 1))
	requireNothingMore(t, late, "b4")
}

// testInstanceDeadLetters checks that retries and dead letters are per
// copy: a copy that fails on one instance is dead-lettered for that
// instance only, and a retry of the dead letter goes back to it.
func (s *suite) testInstanceDeadLetters(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	service, queue := newService(), newQueueName()
	register(t, b, service, "d1")
	register(t, b, service, "d2")
	_, err := b.Broadcast(ctx, queue, service, time.Hour, false, newMessage("profile"))
	require.NoError(t, err)

	q1, q2 := pubsub.InstanceQueue(queue, "d1"), pubsub.InstanceQueue(queue, "d2")
	require.Equal(t, []string{"profile"}, receiveN(t, subscribe(t, b, q1), 1))
	ctx2, cancel := context.WithCancel(ctx)
	ch2, err := b.Subscriber().Subscribe(ctx2, q2)
	require.NoError(t, err)
	m := Receive(t, ch2)
	delivery(t, m, q2).MarkDeadLetter(pubsub.DeadLetterReason{Error: "bad profile", Handler: "h", Service: service})
	m.Ack()
	require.Eventually(t, func() bool { return len(listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: q2})) == 1 }, eventually, tick)
	cancel()
	require.Empty(t, listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: q1}), "d1's copy succeeded")
	dl := listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: q2})[0]
	q, inst := pubsub.SplitInstanceQueue(dl.Queue)
	require.Equal(t, queue, q)
	require.Equal(t, "d2", inst, "the dead letter names its instance")

	n, err := b.RetryDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: q2})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"profile"}, receiveN(t, subscribe(t, b, q2), 1), "the retry goes back to d2")
	requireCounts(t, b, q1, counts{})
}

// testInstanceGone checks that messages for an instance gone past the
// TTL become dead letters with the reason, and are never handed to
// another instance.
func (s *suite) testInstanceGone(t *testing.T) {
	if !s.caps.Has(pubsub.CapDeadLetters) {
		t.Skip("backend does not declare dead_letters")
	}
	ctx := context.Background()
	b := s.open(t)
	service, queue := newService(), newQueueName()
	register(t, b, service, "g1")
	g2 := register(t, b, service, "g2")
	require.NoError(t, b.PublishTo(queue, "g1", newMessage("for g1"), newMessage("for g1 too")))
	require.NoError(t, b.PublishTo(queue, "g2", newMessage("for g2")))
	// Both miss their heartbeats; g2 comes back. The TTL is long enough
	// that g2's new heartbeat is still fresh when the expiry runs on a
	// loaded machine (at 200ms, g2 was once expired too).
	const ttl = time.Second
	time.Sleep(ttl + 300*time.Millisecond)
	require.NoError(t, b.RegisterInstance(ctx, g2, time.Minute))

	moved, err := b.ExpireInstances(ctx, service, []string{queue}, ttl)
	require.NoError(t, err)
	require.Equal(t, 2, moved)
	dls := listDeadLetters(t, b, pubsub.DeadLetterQuery{Queue: pubsub.InstanceQueue(queue, "g1")})
	require.Len(t, dls, 2)
	for _, dl := range dls {
		require.Equal(t, pubsub.ReasonInstanceGone, dl.Error)
	}
	require.Equal(t, []string{"for g2"}, receiveN(t, subscribe(t, b, pubsub.InstanceQueue(queue, "g2")), 1), "the live instance keeps its own")
}

// testInstanceRegistry checks the registry: records are listed, and a
// second live process under the same id is refused with its host named.
func (s *suite) testInstanceRegistry(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	service := newService()
	first := register(t, b, service, "r1")
	register(t, b, service, "r2")
	all, err := b.Instances(ctx)
	require.NoError(t, err)
	mine := slices.DeleteFunc(all, func(i pubsub.Instance) bool { return i.Service != service })
	require.Len(t, mine, 2)
	require.Equal(t, "r1", mine[0].ID)
	require.Equal(t, first.Host, mine[0].Host)

	dup := &pubsub.Instance{Service: service, ID: "r1", Host: "elsewhere", PID: 1, Nonce: uuid.NewString()}
	err = s.open(t).RegisterInstance(ctx, dup, time.Minute)
	require.ErrorIs(t, err, pubsub.ErrInstanceTaken)
	require.Contains(t, err.Error(), "r1")
	require.Contains(t, err.Error(), first.Host, "the error names the other process's host")
	require.NoError(t, b.RegisterInstance(ctx, first, time.Minute), "the same process heartbeats")

	// A process that stops cleanly frees its id at once; its record stays,
	// stale, so that what is addressed to it waits for it.
	require.NoError(t, b.StopInstance(ctx, *first))
	all, err = b.Instances(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(all, func(i pubsub.Instance) bool { return i.Service == service && i.ID == "r1" })
	require.GreaterOrEqual(t, i, 0, "a stopped instance keeps its record")
	require.Equal(t, pubsub.InstanceStale, all[i].State(time.Now(), time.Minute, time.Hour))
	require.NoError(t, s.open(t).RegisterInstance(ctx, dup, time.Minute), "a stopped instance's id is free")
	require.NoError(t, b.StopInstance(ctx, *first), "stopping a record another process holds changes nothing")
	all, err = b.Instances(ctx)
	require.NoError(t, err)
	i = slices.IndexFunc(all, func(i pubsub.Instance) bool { return i.Service == service && i.ID == "r1" })
	require.Equal(t, "elsewhere", all[i].Host)

	require.NoError(t, b.DeregisterInstance(ctx, service, "r1"))
	ids, err := b.InstancesOf(ctx, service, time.Hour)
	require.NoError(t, err)
	require.Equal(t, []string{"r2"}, ids)
	require.Error(t, b.RegisterInstance(ctx, &pubsub.Instance{Service: service, ID: "no/slash"}, time.Minute))
}
