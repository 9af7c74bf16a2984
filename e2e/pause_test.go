package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// TestPauseAcrossProcesses pauses a queue from this process while
// CentralCloud consumes it in another: once paused (within a second), no
// new message is delivered, publishing goes on, and after the resume the
// service consumes what waited, without a restart.
func TestPauseAcrossProcesses(t *testing.T) {
	bins := build(t)
	g := newGroup(t)
	ctx := context.Background()
	url := postgresURL(t)
	admin, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.Init(ctx))

	cc := g.add("centralcloud", bins.CentralCloud, []string{"-journal", workDir(t, "journal") + "/cc"},
		environ("QUANTUM_FLOW_MESSAGING_URL="+url, "QUANTUM_FLOW_INSTANCE_ID=cc"))
	cc.start()
	g.waitUntil(time.Minute, "centralcloud to register", func() (bool, string) {
		ids, err := admin.InstancesOf(ctx, topology.CentralCloud, time.Minute)
		return err == nil && slices.Contains(ids, "cc"), fmt.Sprint(ids, err)
	})

	const q = topology.MetricsQueue
	publish := func(from, n int) {
		t.Helper()
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(),
				fmt.Appendf(nil, `{"id":"m-%d","instance":"s9","error_rate":0.01,"latency_ms":5}`, from+i))
		}
		require.NoError(t, admin.Publisher().Publish(q, msgs...))
	}
	stats := func() pubsub.QueueStats {
		t.Helper()
		st, err := admin.Stats(ctx, q)
		require.NoError(t, err)
		return st
	}
	consumed := func() (bool, string) {
		st := stats()
		return st.Pending+st.InFlight == 0, fmt.Sprintf("pending %d, in flight %d", st.Pending, st.InFlight)
	}

	publish(0, 3)
	g.waitUntil(30*time.Second, "the running service to consume", consumed)

	require.NoError(t, admin.PauseQueue(ctx, q))
	time.Sleep(time.Second) // the other process learns it within a second
	publish(3, 5)
	time.Sleep(3 * time.Second)
	st := stats()
	require.True(t, st.Paused)
	require.EqualValues(t, 5, st.Pending, "nothing delivered while paused")
	require.Zero(t, st.InFlight)

	require.NoError(t, admin.ResumeQueue(ctx, q))
	g.waitUntil(30*time.Second, "the service to consume what waited, once resumed", consumed)
	require.NoError(t, g.unexpectedExit())
}
