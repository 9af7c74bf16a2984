package middleware_test

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func TestPoisonDeadLettersWhenNoRetryScheduled(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	logger, logs := bufferLogger()
	msg, d := delivered(t, 4)
	_, err := middleware.PoisonQueue(testConsumer, bus, logger)(handlerReturning(errors.New("still failing")))(msg)
	require.NoError(t, err, "nil so the router acks and the backend moves it")
	out := d.Outcome()
	require.Equal(t, &pubsub.DeadLetterReason{
		Error: "still failing", Handler: topology.HandleProposalForConsensus, Service: topology.CentralCloud,
	}, out.DeadLetter)

	e := ev.get(t, "message_dead_lettered")
	require.Equal(t, 4.0, e.m["attempt"])
	require.Equal(t, 1.0, e.m["count"])
	require.Equal(t, topology.ProposalsQueue, e.md["queue"])
	require.Equal(t, "still failing", e.md["error"])
	require.Equal(t, msg.UUID, e.md["message_id"])
	require.Contains(t, logs.String(), "message dead-lettered")
}

func TestPoisonLeavesScheduledRetriesAlone(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	msg, d := delivered(t, 1)
	cause := errors.New("transient")
	h := middleware.PoisonQueue(testConsumer, bus, nil)(func(m *message.Message) ([]*message.Message, error) {
		pubsub.DeliveryOf(m).RetryAfter(0, cause)
		return nil, cause
	})
	_, err := h(msg)
	require.Equal(t, cause, err)
	require.Nil(t, d.Outcome().DeadLetter)
	require.Empty(t, ev.names())
}

func TestPoisonPermanentErrorEvenIfRetryScheduled(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 1)
	cause := middleware.Permanent(errors.New("unparseable"))
	h := middleware.PoisonQueue(testConsumer, nil, nil)(func(m *message.Message) ([]*message.Message, error) {
		pubsub.DeliveryOf(m).RetryAfter(0, cause)
		return nil, cause
	})
	_, err := h(msg)
	require.NoError(t, err)
	require.NotNil(t, d.Outcome().DeadLetter)
}

func TestPoisonSuccessAndNoDelivery(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 1)
	_, err := middleware.PoisonQueue(testConsumer, nil, nil)(handlerReturning(nil))(msg)
	require.NoError(t, err)
	require.Nil(t, d.Outcome().DeadLetter)

	cause := errors.New("x")
	_, err = middleware.PoisonQueue(testConsumer, nil, nil)(handlerReturning(cause))(message.NewMessage("plain", nil))
	require.Equal(t, cause, err, "without a Delivery there is nowhere to dead-letter to")
}
