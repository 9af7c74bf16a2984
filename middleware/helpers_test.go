package middleware_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

var testConsumer = middleware.Consumer{
	Service: topology.CentralCloud,
	Handler: topology.HandleProposalForConsensus,
	Queue:   topology.ProposalsQueue,
}

// delivered returns a message as a QuantumFlow backend hands it out on the
// given attempt.
func delivered(t *testing.T, attempt int) (*message.Message, *pubsub.Delivery) {
	t.Helper()
	msg := message.NewMessage("msg-"+t.Name(), []byte(`{"x":1}`))
	d := &pubsub.Delivery{Queue: topology.ProposalsQueue, Attempt: attempt}
	pubsub.AttachDelivery(msg, d)
	return msg, d
}

func handlerReturning(err error) message.HandlerFunc {
	return func(*message.Message) ([]*message.Message, error) { return nil, err }
}

type event struct {
	name string
	m    telemetry.Measurements
	md   telemetry.Metadata
}

type events struct {
	mu  sync.Mutex
	all []event
}

func listen(t *testing.T) (*telemetry.Bus, *events) {
	t.Helper()
	bus := telemetry.NewBus()
	ev := &events{}
	require.NoError(t, bus.Attach("test", telemetry.Prefix, func(e telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		ev.all = append(ev.all, event{e.Name(), m, md})
	}))
	return bus, ev
}

func (e *events) names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, x := range e.all {
		out = append(out, x.name)
	}
	return out
}

func (e *events) get(t *testing.T, name string) event {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.all {
		if x.name == name {
			return x
		}
	}
	require.Failf(t, "event not emitted", "%s (got %v)", name, e.all)
	return event{}
}

func bufferLogger() (*slog.Logger, *testutil.SyncBuffer) {
	buf := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}
