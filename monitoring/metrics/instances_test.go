package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/metrics"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// A backend is the poller's instance registry.
var _ metrics.InstanceLister = (*pubsub.Backend)(nil)

// registry is a backend whose instance registry holds records with the
// heartbeats a test chooses.
type registry struct {
	*pubsub.Backend
	instances []pubsub.Instance
	err       error
}

func (r *registry) Instances(context.Context) ([]pubsub.Instance, error) { return r.instances, r.err }

// adminOnly hides a backend's instance registry.
type adminOnly struct{ pubsub.Admin }

type instanceBundle struct {
	backend *pubsub.Backend
	reg     *registry
}

const results = topology.ConsensusQueue

// setupInstances opens a mem backend with proposals_for_consensus_queue
// (one pending message) and instance queues of consensus_results_queue:
// s-live (2 pending), s-stale (1 pending), s-gone-dead (a dead letter),
// s-gone-empty and s-unknown (empty; s-unknown has no record). The
// registry holds s-live, s-stale, s-gone-dead and s-gone-empty, whose
// heartbeats make them live, stale, gone and gone, and centralcloud's c-1
// (live) and bench's b-1 (stale).
func setupInstances(t *testing.T) instanceBundle {
	t.Helper()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	pub := func(queue string, n int) {
		for range n {
			require.NoError(t, b.Publisher().Publish(queue, message.NewMessage(watermill.NewUUID(), []byte(`{}`))))
		}
	}
	pub(topology.ProposalsQueue, 1)
	pub(pubsub.InstanceQueue(results, "s-live"), 2)
	pub(pubsub.InstanceQueue(results, "s-stale"), 1)
	for _, id := range []string{"s-gone-empty", "s-unknown"} {
		require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: pubsub.InstanceQueue(results, id)}))
	}
	deadLetterOne(t, b, pubsub.InstanceQueue(results, "s-gone-dead"))

	now := time.Now()
	rec := func(service, id string, ago time.Duration) pubsub.Instance {
		return pubsub.Instance{Service: service, ID: id, StartedAt: now.Add(-48 * time.Hour), HeartbeatAt: now.Add(-ago)}
	}
	return instanceBundle{backend: b, reg: &registry{Backend: b, instances: []pubsub.Instance{
		rec("bench", "b-1", time.Minute),
		rec(topology.CentralCloud, "c-1", 0),
		rec(topology.Singularity, "s-gone-dead", 48*time.Hour),
		rec(topology.Singularity, "s-gone-empty", 25*time.Hour),
		rec(topology.Singularity, "s-live", time.Second),
		rec(topology.Singularity, "s-stale", time.Minute),
	}}}
}

// deadLetterOne publishes a message to queue and dead-letters it.
func deadLetterOne(t *testing.T, b *pubsub.Backend, queue string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, b.Publisher().Publish(queue, message.NewMessage(watermill.NewUUID(), []byte(`{"dead":true}`))))
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	select {
	case msg := <-ch:
		pubsub.DeliveryOf(msg).MarkDeadLetter(pubsub.DeadLetterReason{Error: "test"})
		msg.Ack()
	case <-ctx.Done():
		t.Fatal("no message to dead-letter")
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(context.Background(), queue)
		return err == nil && st.DeadLetters == 1
	}, waitFor, 10*time.Millisecond)
}

// poll polls admin once with a fresh registry and returns it.
func poll(t *testing.T, admin pubsub.Admin, opts metrics.PollerOptions) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: "mem"})
	require.NoError(t, err)
	opts.Admin, opts.Metrics = admin, m
	p, err := metrics.NewPoller(opts)
	require.NoError(t, err)
	_, err = p.Poll(context.Background())
	require.NoError(t, err)
	return reg
}

// exposition returns reg's text exposition.
func exposition(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var buf bytes.Buffer
	for _, mf := range mfs {
		require.NoError(t, expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain)).Encode(mf))
	}
	return buf.String()
}

func iq(instance string) map[string]string {
	return map[string]string{"queue": results, "instance_id": instance, "backend": "mem"}
}

// TestInstanceQueueGauges: an instance queue's gauges carry its queue
// and instance_id; a queue's keep exactly their labels. Instance queues
// are exported while their instance is not gone or they hold anything.
func TestInstanceQueueGauges(t *testing.T) {
	t.Parallel()
	b := setupInstances(t)
	reg := poll(t, b.reg, metrics.PollerOptions{})

	require.Equal(t, float64(2), value(t, reg, metrics.QueuePending, iq("s-live")))
	require.Positive(t, value(t, reg, metrics.QueueOldestPendingAge, iq("s-live")))
	require.Equal(t, float64(1), value(t, reg, metrics.QueuePending, iq("s-stale")), "stale is not gone")
	require.Equal(t, float64(1), value(t, reg, metrics.QueueDeadLetters, iq("s-gone-dead")), "gone, but holds a dead letter")
	require.Equal(t, float64(0), value(t, reg, metrics.QueuePending, iq("s-gone-dead")))
	require.Equal(t, float64(-1), value(t, reg, metrics.QueuePending, iq("s-gone-empty")), "gone and empty: not exported")
	require.Equal(t, float64(-1), value(t, reg, metrics.QueuePending, iq("s-unknown")), "no record and empty: not exported")

	text := exposition(t, reg)
	// A queue's series are as they were before instance queues.
	require.Contains(t, text, `quantumflow_queue_pending_messages{backend="mem",queue="proposals_for_consensus_queue"} 1`+"\n")
	require.Contains(t, text, `quantumflow_queue_pending_messages{backend="mem",instance_id="s-live",queue="consensus_results_queue"} 2`+"\n")
	require.NotContains(t, text, "@", "no series names an instance queue by its full name")
	require.NotContains(t, text, `instance_id=""`)

	// Without a registry every instance queue is exported.
	reg = poll(t, adminOnly{b.backend}, metrics.PollerOptions{})
	for _, id := range []string{"s-live", "s-stale", "s-gone-dead", "s-gone-empty", "s-unknown"} {
		require.GreaterOrEqual(t, value(t, reg, metrics.QueuePending, iq(id)), float64(0), id)
	}
	require.NotContains(t, exposition(t, reg), metrics.Instances)
}

// TestInstanceQueueSeriesAreCapped: past MaxInstanceQueueSeries, instance
// queues are summed per queue under instance_id="(other)".
func TestInstanceQueueSeriesAreCapped(t *testing.T) {
	t.Parallel()
	b := setupInstances(t)
	// In name order: s-gone-dead, s-live, s-stale.
	reg := poll(t, b.reg, metrics.PollerOptions{MaxInstanceQueueSeries: 1})
	require.Equal(t, float64(1), value(t, reg, metrics.QueueDeadLetters, iq("s-gone-dead")))
	require.Equal(t, float64(-1), value(t, reg, metrics.QueuePending, iq("s-live")))
	require.Equal(t, float64(-1), value(t, reg, metrics.QueuePending, iq("s-stale")))
	require.Equal(t, float64(3), value(t, reg, metrics.QueuePending, iq(metrics.OtherInstances)), "s-live's 2 and s-stale's 1")
	require.Equal(t, float64(0), value(t, reg, metrics.QueueDeadLetters, iq(metrics.OtherInstances)))
	require.Positive(t, value(t, reg, metrics.QueueOldestPendingAge, iq(metrics.OtherInstances)))
	require.Equal(t, float64(1), value(t, reg, metrics.QueuePending, map[string]string{"queue": topology.ProposalsQueue}),
		"queues are never capped")
	require.Error(t, pubsub.ValidateInstanceID(metrics.OtherInstances), "no instance can be called (other)")
}

// TestInstancesGauge: quantumflow_instances counts the registry by service
// and state, by the CLI's rules, with a series for every state of each
// topology service; a service that leaves the registry stops being
// exported, and an instance queue that empties after its instance is gone.
func TestInstancesGauge(t *testing.T) {
	t.Parallel()
	b := setupInstances(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: "mem"})
	require.NoError(t, err)
	p, err := metrics.NewPoller(metrics.PollerOptions{Admin: b.reg, Metrics: m})
	require.NoError(t, err)
	snap, err := p.Poll(ctx)
	require.NoError(t, err)

	il := func(service, state string) map[string]string {
		return map[string]string{"service": service, "state": state, "backend": "mem"}
	}
	for _, c := range []struct {
		service, state string
		want           float64
	}{
		{topology.Singularity, "live", 1}, {topology.Singularity, "stale", 1}, {topology.Singularity, "gone", 2},
		{topology.CentralCloud, "live", 1}, {topology.CentralCloud, "stale", 0}, {topology.CentralCloud, "gone", 0},
		{"bench", "live", 0}, {"bench", "stale", 1}, {"bench", "gone", 0},
	} {
		require.Equal(t, c.want, value(t, reg, metrics.Instances, il(c.service, c.state)), "%s %s", c.service, c.state)
	}
	require.Equal(t, map[string]map[string]int{
		topology.Singularity: {"live": 1, "stale": 1, "gone": 2}, topology.CentralCloud: {"live": 1}, "bench": {"stale": 1},
	}, snap.Instances)

	// The poller's timeouts decide the states.
	reg2 := poll(t, b.reg, metrics.PollerOptions{InstanceStaleAfter: time.Hour, InstanceTTL: 100 * time.Hour})
	require.Equal(t, float64(2), value(t, reg2, metrics.Instances, il(topology.Singularity, "live")))
	require.Equal(t, float64(2), value(t, reg2, metrics.Instances, il(topology.Singularity, "stale")))
	require.Equal(t, float64(0), value(t, reg2, metrics.Instances, il(topology.Singularity, "gone")))

	// bench leaves the registry; s-gone-dead's dead letter is purged.
	b.reg.instances = b.reg.instances[1:]
	n, err := b.backend.PurgeDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: pubsub.InstanceQueue(results, "s-gone-dead")})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = p.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, float64(-1), value(t, reg, metrics.Instances, il("bench", "stale")))
	require.Equal(t, float64(0), value(t, reg, metrics.Instances, il(topology.CentralCloud, "stale")), "a topology service keeps its zeros")
	require.Equal(t, float64(-1), value(t, reg, metrics.QueueDeadLetters, iq("s-gone-dead")))

	// A registry that fails fails the poll; one the backend does not keep
	// is no registry.
	b.reg.err = errors.New("registry unreachable")
	_, err = p.Poll(ctx)
	require.ErrorContains(t, err, "list instances: registry unreachable")
	require.Equal(t, float64(0), value(t, reg, metrics.BackendUp, map[string]string{"backend": "mem"}))
	b.reg.err = pubsub.ErrUnsupported
	_, err = p.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, float64(1), value(t, reg, metrics.BackendUp, map[string]string{"backend": "mem"}))
}
