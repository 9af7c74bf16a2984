package middleware_test

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
)

func TestRecovererTurnsPanicIntoError(t *testing.T) {
	t.Parallel()
	logger, logs := bufferLogger()
	h := middleware.Recoverer(testConsumer, logger)(func(*message.Message) ([]*message.Message, error) {
		panic("boom")
	})
	msg, _ := delivered(t, 1)
	out, err := h(msg)
	require.Nil(t, out)
	var pe *middleware.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "boom", pe.Value)
	require.Equal(t, "panic: boom", err.Error(), "the stack stays out of the error")
	require.Contains(t, logs.String(), "handler panicked")
	require.Contains(t, logs.String(), "recoverer_test.go", "the stack is logged")
	require.Contains(t, logs.String(), "handle_proposal_for_consensus")
}

func TestRecovererUnwrapsPanickedError(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("sentinel")
	h := middleware.Recoverer(testConsumer, nil)(func(*message.Message) ([]*message.Message, error) {
		panic(sentinel)
	})
	msg, _ := delivered(t, 1)
	_, err := h(msg)
	require.ErrorIs(t, err, sentinel)
}

func TestRecovererPassesResultsThrough(t *testing.T) {
	t.Parallel()
	want := errors.New("plain")
	msg, _ := delivered(t, 1)
	_, err := middleware.Recoverer(testConsumer, nil)(handlerReturning(want))(msg)
	require.Equal(t, want, err)
	_, err = middleware.Recoverer(testConsumer, nil)(handlerReturning(nil))(msg)
	require.NoError(t, err)
}
