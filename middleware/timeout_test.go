package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
)

func TestTimeoutCancelsAttemptAndRestoresContext(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 2)
	orig := msg.Context()
	h := middleware.Timeout(20 * time.Millisecond)(func(m *message.Message) ([]*message.Message, error) {
		require.Same(t, d, pubsub.DeliveryOf(m), "the Delivery stays reachable")
		<-m.Context().Done()
		return nil, m.Context().Err()
	})
	_, err := h(msg)
	require.ErrorIs(t, err, middleware.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "20ms")
	require.Equal(t, orig, msg.Context(), "the original context is restored")
	require.NoError(t, msg.Context().Err())
}

func TestTimeoutLateSuccessIsSuccess(t *testing.T) {
	t.Parallel()
	msg, _ := delivered(t, 1)
	h := middleware.Timeout(time.Millisecond)(func(m *message.Message) ([]*message.Message, error) {
		<-m.Context().Done()
		return nil, nil
	})
	_, err := h(msg)
	require.NoError(t, err)
}

func TestTimeoutErrorBeforeDeadlineUnchanged(t *testing.T) {
	t.Parallel()
	want := errors.New("bad payload")
	msg, _ := delivered(t, 1)
	_, err := middleware.Timeout(time.Hour)(handlerReturning(want))(msg)
	require.Equal(t, want, err)
}

func TestTimeoutZeroMeansNone(t *testing.T) {
	t.Parallel()
	msg, _ := delivered(t, 1)
	h := middleware.Timeout(0)(func(m *message.Message) ([]*message.Message, error) {
		_, has := m.Context().Deadline()
		require.False(t, has)
		return nil, nil
	})
	_, err := h(msg)
	require.NoError(t, err)
}
