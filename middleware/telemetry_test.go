package middleware_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

func TestTelemetrySuccessEmitsHandledAndConsumed(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	msg, _ := delivered(t, 2)
	msg.Metadata.Set(telemetry.MetadataPublishedAt, strconv.FormatInt(time.Now().Add(-time.Second).UnixNano(), 10))
	_, err := middleware.Telemetry(testConsumer, bus)(handlerReturning(nil))(msg)
	require.NoError(t, err)
	require.Equal(t, []string{"proposal_received", "message_consumed"}, ev.names())
	e := ev.get(t, "message_consumed")
	require.Equal(t, 2.0, e.m["attempt"])
	require.Equal(t, 1.0, e.m["count"])
	require.Contains(t, e.m, "duration_ms")
	require.GreaterOrEqual(t, e.m["latency_ms"], 1000.0)
	require.Equal(t, map[string]any{
		"queue": topology.ProposalsQueue, "service": topology.CentralCloud,
		"handler": topology.HandleProposalForConsensus, "message_id": msg.UUID,
	}, map[string]any(e.md))
}

func TestTelemetryPerQueueHandledEvents(t *testing.T) {
	t.Parallel()
	for queue, want := range map[string][]string{
		topology.RollbackQueue:       {"rollback_completed", "message_consumed"},
		topology.SafetyProfilesQueue: {"profile_updated", "message_consumed"},
		topology.ConsensusQueue:      {"message_consumed"},
	} {
		bus, ev := listen(t)
		msg := message.NewMessage("m", nil)
		pubsub.AttachDelivery(msg, &pubsub.Delivery{Queue: queue, Attempt: 1})
		_, err := middleware.Telemetry(middleware.Consumer{Service: topology.Singularity, Queue: queue}, bus)(handlerReturning(nil))(msg)
		require.NoError(t, err)
		require.Equal(t, want, ev.names(), queue)
	}
}

func TestTelemetryFailureWithRetry(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	msg, _ := delivered(t, 1)
	cause := errors.New("boom")
	h := middleware.Telemetry(testConsumer, bus)(func(m *message.Message) ([]*message.Message, error) {
		pubsub.DeliveryOf(m).RetryAfter(1500*time.Millisecond, cause)
		return nil, cause
	})
	_, err := h(msg)
	require.Equal(t, cause, err)
	require.Equal(t, []string{"message_failed", "message_retried"}, ev.names())
	require.Equal(t, "boom", ev.get(t, "message_failed").md["error"])
	require.Equal(t, 1500.0, ev.get(t, "message_retried").m["retry_delay_ms"])
}

func TestTelemetryDeadLetteredIsAFailureNotAConsume(t *testing.T) {
	t.Parallel()
	bus, ev := listen(t)
	msg, _ := delivered(t, 4)
	h := middleware.Wrap(handlerReturning(errors.New("gave up")),
		middleware.Telemetry(testConsumer, bus),
		middleware.PoisonQueue(testConsumer, bus, nil),
	)
	_, err := h(msg)
	require.NoError(t, err)
	require.Equal(t, []string{"message_dead_lettered", "message_failed"}, ev.names())
	require.Equal(t, "gave up", ev.get(t, "message_failed").md["error"])
}

func TestTelemetryNobodyListening(t *testing.T) {
	t.Parallel()
	msg, _ := delivered(t, 1)
	_, err := middleware.Telemetry(testConsumer, telemetry.NewBus())(handlerReturning(nil))(msg)
	require.NoError(t, err)
}

func TestTelemetryReachesExactEventListener(t *testing.T) {
	t.Parallel()
	bus := telemetry.NewBus()
	var got int
	require.NoError(t, bus.Attach("one", telemetry.ProposalReceived, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) { got++ }))
	msg, _ := delivered(t, 1)
	_, err := middleware.Telemetry(testConsumer, bus)(handlerReturning(nil))(msg)
	require.NoError(t, err)
	require.Equal(t, 1, got)
}
