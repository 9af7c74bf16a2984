package middleware_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// clock is a settable clock for the Inbox.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// counting returns a handler that counts its runs per message id and
// fails with fail while it is set.
func counting(fail *atomic.Pointer[error]) (message.HandlerFunc, func(id string) int) {
	var mu sync.Mutex
	runs := map[string]int{}
	h := func(msg *message.Message) ([]*message.Message, error) {
		mu.Lock()
		runs[msg.UUID]++
		mu.Unlock()
		if p := fail.Load(); p != nil {
			return nil, *p
		}
		return nil, nil
	}
	return h, func(id string) int { mu.Lock(); defer mu.Unlock(); return runs[id] }
}

func deliveryOf(id string, attempt int) *message.Message {
	msg := message.NewMessage(id, []byte(`{}`))
	pubsub.AttachDelivery(msg, &pubsub.Delivery{Queue: topology.ProposalsQueue, Attempt: attempt})
	return msg
}

func TestInboxSkipsARedeliveryOfAHandledMessage(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	h, runs := counting(&fail)
	in := middleware.NewInbox(middleware.InboxConfig{})
	mw := in.Middleware(h)

	_, err := mw(deliveryOf("a", 1))
	require.NoError(t, err)
	_, err = mw(deliveryOf("a", 2))
	require.NoError(t, err, "the redelivery is acked")
	require.Equal(t, 1, runs("a"))
	require.EqualValues(t, 1, in.Duplicates())

	// A failed run is not remembered: the retry runs the handler.
	boom := errors.New("boom")
	fail.Store(&boom)
	_, err = mw(deliveryOf("b", 1))
	require.ErrorIs(t, err, boom)
	fail.Store(nil)
	_, err = mw(deliveryOf("b", 2))
	require.NoError(t, err)
	require.Equal(t, 2, runs("b"))
	require.Equal(t, 2, in.Len())

	// The same id on another queue is another message.
	other := message.NewMessage("a", nil)
	pubsub.AttachDelivery(other, &pubsub.Delivery{Queue: topology.MetricsQueue, Attempt: 1})
	_, err = mw(other)
	require.NoError(t, err)
	require.Equal(t, 2, runs("a"))
}

func TestInboxForgetsAfterTheWindowAndPastMaxIDs(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	h, runs := counting(&fail)
	c := &clock{now: time.Unix(1000, 0)}
	in := middleware.NewInbox(middleware.InboxConfig{Window: time.Minute, MaxIDs: 3, Now: c.Now})
	mw := in.Middleware(h)
	handle := func(id string) { _, err := mw(deliveryOf(id, 1)); require.NoError(t, err) }

	handle("a")
	c.add(59 * time.Second)
	handle("a")
	require.Equal(t, 1, runs("a"), "within the window")
	c.add(time.Second)
	handle("a")
	require.Equal(t, 2, runs("a"), "a redelivery after the window runs again")

	for _, id := range []string{"b", "c", "d"} {
		handle(id)
	}
	require.Equal(t, 3, in.Len(), "at most MaxIDs")
	handle("a")
	require.Equal(t, 3, runs("a"), "the oldest id was forgotten past MaxIDs")
	handle("d")
	require.Equal(t, 1, runs("d"))
}

func TestInboxConcurrentDeliveriesRunOnce(t *testing.T) {
	t.Parallel()
	in := middleware.NewInbox(middleware.InboxConfig{})
	var runs atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	mw := in.Middleware(func(*message.Message) ([]*message.Message, error) {
		if runs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil, nil
	})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	wg.Go(func() { _, errs[0] = mw(deliveryOf("x", 1)) })
	<-entered
	for i := 1; i < len(errs); i++ {
		wg.Go(func() { _, errs[i] = mw(deliveryOf("x", 2)) })
	}
	close(release)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, runs.Load())
	require.EqualValues(t, 4, in.Duplicates())
}

func TestInboxWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	in := middleware.NewInbox(middleware.InboxConfig{})
	entered, release := make(chan struct{}), make(chan struct{})
	mw := in.Middleware(func(*message.Message) ([]*message.Message, error) {
		close(entered)
		<-release
		return nil, nil
	})
	done := make(chan struct{})
	go func() { defer close(done); _, _ = mw(deliveryOf("x", 1)) }()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	dup := message.NewMessage("x", nil)
	dup.SetContext(ctx)
	pubsub.AttachDelivery(dup, &pubsub.Delivery{Queue: topology.ProposalsQueue, Attempt: 2})
	cancel()
	_, err := mw(dup)
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	<-done
}

func TestInboxDoesNotRememberDeadLetters(t *testing.T) {
	t.Parallel()
	in := middleware.NewInbox(middleware.InboxConfig{})
	var runs atomic.Int32
	// PoisonQueue inside the Inbox acks a dead-lettered message (nil).
	h := middleware.Wrap(func(*message.Message) ([]*message.Message, error) {
		runs.Add(1)
		return nil, middleware.Permanent(errors.New("bad"))
	}, in.Middleware, middleware.PoisonQueue(testConsumer, nil, nil))
	msg := deliveryOf("dl", 1)
	_, err := h(msg)
	require.NoError(t, err)
	require.NotNil(t, pubsub.DeliveryOf(msg).Outcome().DeadLetter)
	_, err = h(deliveryOf("dl", 1))
	require.NoError(t, err)
	require.EqualValues(t, 2, runs.Load(), "a dead letter retried runs the handler")
	require.Zero(t, in.Len())
}

func TestInboxKeyByBusinessID(t *testing.T) {
	t.Parallel()
	var fail atomic.Pointer[error]
	h, _ := counting(&fail)
	var total atomic.Int32
	in := middleware.NewInbox(middleware.InboxConfig{Key: func(m *message.Message) string { return m.Metadata.Get("proposal_id") }})
	mw := in.Middleware(func(m *message.Message) ([]*message.Message, error) { total.Add(1); return h(m) })
	for _, id := range []string{"m1", "m2"} {
		msg := deliveryOf(id, 1)
		msg.Metadata.Set("proposal_id", "p1")
		_, err := mw(msg)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, total.Load(), "published twice under two message ids")
}
