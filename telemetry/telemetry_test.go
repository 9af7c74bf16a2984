package telemetry_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) handle(e telemetry.Event, _ telemetry.Measurements, _ telemetry.Metadata) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e.String())
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func TestAttachPrefixAndExact(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var all, exact recorder
	require.NoError(t, b.Attach("all", telemetry.Prefix, all.handle))
	require.NoError(t, b.Attach("exact", telemetry.ProposalPublished, exact.handle))

	b.Execute(telemetry.ProposalPublished, telemetry.Measurements{"count": 1}, nil)
	b.Execute(telemetry.MetricsPublished, nil, nil)
	b.Execute(telemetry.Event{"other", "app", "thing"}, nil, nil)

	require.Equal(t, []string{"evolution.QuantumFlow.proposal_published", "evolution.QuantumFlow.metrics_published"}, all.got())
	require.Equal(t, []string{"evolution.QuantumFlow.proposal_published"}, exact.got())
}

func TestPrefixIsPartWise(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var r recorder
	// "evolution.Quantum" must not match "evolution.QuantumFlow...".
	require.NoError(t, b.Attach("x", telemetry.Event{"evolution", "Quantum"}, r.handle))
	b.Execute(telemetry.ProposalPublished, nil, nil)
	require.Empty(t, r.got())
}

func TestSeedWildcardAccepted(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var r recorder
	require.NoError(t, b.Attach("quantum_flow_monitor", telemetry.Event{"evolution", "QuantumFlow", "*"}, r.handle))
	b.Execute(telemetry.RollbackCompleted, nil, nil)
	require.Equal(t, []string{"evolution.QuantumFlow.rollback_completed"}, r.got())
}

func TestDuplicateIDAndDetach(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var r recorder
	require.NoError(t, b.Attach("h", telemetry.Prefix, r.handle))
	err := b.Attach("h", telemetry.Prefix, r.handle)
	require.ErrorIs(t, err, telemetry.ErrDuplicateID)
	require.ErrorContains(t, err, `"h"`)

	require.True(t, b.Listening(telemetry.MessageConsumed))
	require.True(t, b.Detach("h"))
	require.False(t, b.Detach("h"))
	require.False(t, b.Listening(telemetry.MessageConsumed))
	b.Execute(telemetry.MessageConsumed, nil, nil)
	require.Empty(t, r.got())

	// The id is free again.
	require.NoError(t, b.Attach("h", telemetry.Prefix, r.handle))
}

func TestMeasurementsAndMetadataDelivered(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var gotM telemetry.Measurements
	var gotMD telemetry.Metadata
	require.NoError(t, b.Attach("h", telemetry.MessageFailed, func(_ telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
		gotM, gotMD = m, md
	}))
	b.Execute(telemetry.MessageFailed, telemetry.Measurements{"attempt": 2}, telemetry.Metadata{"queue": "q"})
	require.Equal(t, 2.0, gotM["attempt"])
	require.Equal(t, "q", gotMD["queue"])

	b.Execute(telemetry.MessageFailed, nil, nil)
	require.NotNil(t, gotM, "nil maps arrive as empty maps")
	require.NotNil(t, gotMD)
}

func TestPanickingHandlerIsDetached(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var calls atomic.Int32
	var r recorder
	require.NoError(t, b.Attach("bad", telemetry.Prefix, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) {
		calls.Add(1)
		panic("boom")
	}))
	require.NoError(t, b.Attach("good", telemetry.Prefix, r.handle))

	require.NotPanics(t, func() { b.Execute(telemetry.ProfileUpdated, nil, nil) })
	b.Execute(telemetry.ProfileUpdated, nil, nil)
	require.Equal(t, int32(1), calls.Load())
	require.Len(t, r.got(), 2, "the other handler keeps receiving")
}

func TestConcurrentAttachExecute(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	var n atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id := string(rune('a' + i))
			for range 100 {
				_ = b.Attach(id, telemetry.Prefix, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) { n.Add(1) })
				b.Detach(id)
			}
		}()
		go func() {
			defer wg.Done()
			for range 1000 {
				b.Execute(telemetry.MessagePublished, nil, nil)
			}
		}()
	}
	wg.Wait()
	// Every handler was detached: an event now reaches none.
	before := n.Load()
	b.Execute(telemetry.MessagePublished, nil, nil)
	require.Equal(t, before, n.Load(), "a detached handler still ran")
	require.False(t, b.Listening(telemetry.MessagePublished))
}

func TestDefaultBusPackageFunctions(t *testing.T) {
	// Not parallel: uses the process-wide Default bus.
	var r recorder
	require.NoError(t, telemetry.Attach("pkg-test", telemetry.ConsensusApproved, r.handle))
	t.Cleanup(func() { telemetry.Detach("pkg-test") })
	require.True(t, telemetry.Listening(telemetry.ConsensusApproved))
	telemetry.Execute(telemetry.ConsensusApproved, nil, nil)
	require.Equal(t, []string{"evolution.QuantumFlow.consensus_approved"}, r.got())
}

func TestSeedEventNames(t *testing.T) {
	t.Parallel()
	var names []string
	for _, e := range telemetry.SeedEvents() {
		require.Equal(t, "evolution", e[0])
		require.Equal(t, "QuantumFlow", e[1])
		require.Len(t, e, 3)
		names = append(names, e.Name())
	}
	require.Equal(t, []string{
		"proposal_published", "metrics_published", "pattern_published", "publish_failed",
		"consensus_approved", "consensus_rejected", "rollback_completed", "profile_updated",
		"proposal_received", "metrics_received", "pattern_received",
		"consensus_result_published", "rollback_trigger_published", "profile_update_published",
	}, names)
}

func TestQueueEventMapping(t *testing.T) {
	t.Parallel()
	pub := map[string]string{
		topology.ProposalsQueue:      "proposal_published",
		topology.MetricsQueue:        "metrics_published",
		topology.PatternsQueue:       "pattern_published",
		topology.ConsensusQueue:      "consensus_result_published",
		topology.RollbackQueue:       "rollback_trigger_published",
		topology.SafetyProfilesQueue: "profile_update_published",
	}
	handled := map[string]string{
		topology.ProposalsQueue:      "proposal_received",
		topology.MetricsQueue:        "metrics_received",
		topology.PatternsQueue:       "pattern_received",
		topology.RollbackQueue:       "rollback_completed",
		topology.SafetyProfilesQueue: "profile_updated",
	}
	for q, name := range pub {
		require.Equal(t, name, telemetry.PublishedEvent(q).Name(), q)
	}
	for q, name := range handled {
		require.Equal(t, name, telemetry.HandledEvent(q).Name(), q)
	}
	require.Nil(t, telemetry.HandledEvent(topology.ConsensusQueue))
	require.Nil(t, telemetry.PublishedEvent("other_queue"))
}

func BenchmarkExecuteNoListeners(b *testing.B) {
	bus := telemetry.NewBus()
	for b.Loop() {
		bus.Execute(telemetry.MessageConsumed, nil, nil)
	}
}

func BenchmarkExecuteOneListener(b *testing.B) {
	bus := telemetry.NewBus()
	_ = bus.Attach("h", telemetry.Prefix, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) {})
	m := telemetry.Measurements{"count": 1}
	for b.Loop() {
		bus.Execute(telemetry.MessageConsumed, m, nil)
	}
}

func TestListeningUnder(t *testing.T) {
	t.Parallel()
	b := telemetry.NewBus()
	require.False(t, b.ListeningUnder(telemetry.Prefix))
	require.NoError(t, b.Attach("exact", telemetry.ProposalReceived, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) {}))
	require.True(t, b.ListeningUnder(telemetry.Prefix), "a handler of one event under the prefix")
	require.False(t, b.Listening(telemetry.Prefix), "the prefix itself is not an event it receives")
	require.False(t, b.ListeningUnder(telemetry.Event{"other"}))
	require.NoError(t, b.Attach("root", telemetry.Event{"evolution"}, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) {}))
	require.True(t, b.ListeningUnder(telemetry.Event{"evolution", "Other"}))
}
