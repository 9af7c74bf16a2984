package middleware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
)

func TestStackPanicIsRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	h := middleware.Wrap(func(*message.Message) ([]*message.Message, error) { panic("kaboom") },
		middleware.Stack(middleware.StackConfig{
			Consumer:  testConsumer,
			Retry:     middleware.RetryPolicy{MaxRetries: 2, Delay: time.Millisecond},
			Timeout:   time.Second,
			Telemetry: bus,
		})...)

	for attempt := 1; attempt <= 2; attempt++ {
		msg, d := delivered(t, attempt)
		_, err := h(msg)
		require.ErrorContains(t, err, "panic: kaboom")
		require.True(t, d.Outcome().Retry)
	}
	msg, d := delivered(t, 3)
	_, err := h(msg)
	require.NoError(t, err)
	require.Equal(t, "panic: kaboom", d.Outcome().DeadLetter.Error)
	require.Equal(t, []string{
		"message_failed", "message_retried",
		"message_failed", "message_retried",
		"message_dead_lettered", "message_failed",
	}, ev.names())
}

func TestStackTimeoutInsideRetryStartsEachAttemptFresh(t *testing.T) {
	t.Parallel()
	// Watermill's Retry+Timeout trap: every retry started cancelled. Here each
	// attempt is a separate delivery, and the context is restored anyway.
	var sawCancelledAtStart bool
	h := middleware.Wrap(func(m *message.Message) ([]*message.Message, error) {
		if m.Context().Err() != nil {
			sawCancelledAtStart = true
		}
		<-m.Context().Done()
		return nil, m.Context().Err()
	}, middleware.Stack(middleware.StackConfig{
		Consumer: testConsumer,
		Retry:    middleware.RetryPolicy{MaxRetries: 3},
		Timeout:  5 * time.Millisecond,
	})...)
	msg, d := delivered(t, 1)
	_, err := h(msg)
	require.ErrorIs(t, err, middleware.ErrTimeout)
	require.True(t, d.Outcome().Retry)
	// Same message object again, as a backend might reuse it.
	pubsub.AttachDelivery(msg, &pubsub.Delivery{Queue: d.Queue, Attempt: 2})
	_, err = h(msg)
	require.Error(t, err)
	require.False(t, sawCancelledAtStart)
}

func TestStackPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 1)
	h := middleware.Wrap(handlerReturning(middleware.Permanent(errors.New("schema mismatch"))),
		middleware.Stack(middleware.StackConfig{Consumer: testConsumer, Retry: middleware.RetryPolicy{MaxRetries: 3}})...)
	_, err := h(msg)
	require.NoError(t, err)
	require.False(t, d.Outcome().Retry)
	require.Equal(t, "schema mismatch", d.Outcome().DeadLetter.Error)
}
