package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// register records an instance of service in b's registry, as a router
// does when it starts.
func register(t *testing.T, b *pubsub.Backend, service, id string, consumers ...pubsub.InstanceConsumer) *pubsub.Instance {
	t.Helper()
	inst := &pubsub.Instance{Service: service, ID: id, Host: "host-" + id, PID: 4242, Version: "test",
		Nonce: watermill.NewUUID(), Consumers: consumers}
	require.NoError(t, b.RegisterInstance(context.Background(), inst, httpapi.DefaultInstanceStaleAfter))
	return inst
}

// publishTo publishes one message per payload to instance's queue of
// queue.
func publishTo(t *testing.T, b *pubsub.Backend, queue, instance string, payloads ...string) []string {
	t.Helper()
	ids := make([]string, len(payloads))
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
		ids[i] = msgs[i].UUID
	}
	require.NoError(t, b.PublishTo(queue, instance, msgs...))
	return ids
}

func TestInstancesListTheRegistryWithStates(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})
	register(t, b.backend, topology.Singularity, "singularity-2")
	register(t, b.backend, topology.Singularity, "singularity-1",
		pubsub.InstanceConsumer{Queue: topology.ConsensusQueue, Workers: 2},
		pubsub.InstanceConsumer{Queue: topology.RollbackQueue, Workers: 1})
	register(t, b.backend, topology.CentralCloud, "central")

	var list httpapi.InstanceList
	r := do(t, b.server, "GET", "/api/instances", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &list)
	require.Equal(t, httpapi.DefaultInstanceStaleAfter.Seconds(), list.StaleAfterSeconds)
	require.Equal(t, (24 * time.Hour).Seconds(), list.TTLSeconds)
	require.Len(t, list.Instances, 3)
	var order []string
	for _, i := range list.Instances {
		order = append(order, i.Service+"/"+i.ID)
		require.Equal(t, "live", i.State, i.ID)
		require.Equal(t, "host-"+i.ID, i.Host)
		require.Equal(t, 4242, i.PID)
		require.Equal(t, "test", i.Version)
		require.GreaterOrEqual(t, i.HeartbeatAgeSeconds, 0.0)
		require.Less(t, i.HeartbeatAgeSeconds, httpapi.DefaultInstanceStaleAfter.Seconds())
		require.False(t, i.StartedAt.IsZero())
		require.NotNil(t, i.Consumers, "consumers is a list, empty or not")
	}
	require.Equal(t, []string{"centralcloud/central", "singularity/singularity-1", "singularity/singularity-2"}, order)
	require.Equal(t, []pubsub.InstanceConsumer{{Queue: topology.ConsensusQueue, Workers: 2}, {Queue: topology.RollbackQueue, Workers: 1}},
		list.Instances[1].Consumers)
	require.NotContains(t, string(r.body), "nonce", "the nonce is the process's own")

	// The timeouts are the handler's: the same records are stale past
	// InstanceStaleAfter, gone past InstanceTTL.
	for _, c := range []struct {
		opts  httpapi.Options
		state string
	}{
		{httpapi.Options{InstanceStaleAfter: time.Millisecond, InstanceTTL: time.Hour}, "stale"},
		{httpapi.Options{InstanceStaleAfter: time.Millisecond, InstanceTTL: 2 * time.Millisecond}, "gone"},
	} {
		c.opts.Backend = b.backend
		srv := httpapiServer(t, c.opts)
		require.Eventually(t, func() bool {
			var l httpapi.InstanceList
			do(t, srv, "GET", "/api/instances", "", nil).json(t, &l)
			for _, i := range l.Instances {
				if i.State != c.state {
					return false
				}
			}
			return len(l.Instances) == 3
		}, 10*time.Second, 10*time.Millisecond, c.state)
	}

	// A deregistered instance is no longer listed.
	require.NoError(t, b.backend.DeregisterInstance(context.Background(), topology.Singularity, "singularity-2"))
	do(t, b.server, "GET", "/api/instances", "", nil).json(t, &list)
	require.Len(t, list.Instances, 2)
}

func TestInstanceQueuesAreGroupedUnderTheirQueue(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{AdminToken: token})
	const q = topology.ConsensusQueue
	require.NoError(t, b.backend.DeclareQueue(context.Background(), pubsub.QueueSpec{Name: pubsub.InstanceQueue(q, "s-1"), MaxRetries: 3}))
	dead := deadLetter(t, b.backend, pubsub.InstanceQueue(q, "s-2"), `{"r":1}`)
	publishTo(t, b.backend, q, "s-1", `{"r":2}`, `{"r":3}`)
	publishTo(t, b.backend, q, "s-2", `{"r":4}`)
	publish(t, b.backend, topology.ProposalsQueue, `{"p":1}`)

	var ov httpapi.Overview
	r := do(t, b.server, "GET", "/api/queues", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &ov)
	require.Len(t, ov.Queues, 2, "one entry per queue, instance queues under theirs")
	group := ov.Queues[0]
	require.Equal(t, q, group.Name)
	require.Empty(t, group.Instance)
	require.Equal(t, 3, group.MaxRetries, "the queue's settings are its instance queues'")
	require.Equal(t, int64(3), group.Pending, "the totals of its instance queues")
	require.Equal(t, int64(1), group.DeadLetters)
	require.Positive(t, group.OldestPendingAge)
	require.Len(t, group.Instances, 2)
	require.Equal(t, httpapi.QueueView{Name: q, Instance: "s-1"}, pick(group.Instances[0]))
	require.Equal(t, int64(2), group.Instances[0].Pending)
	require.Equal(t, "s-2", group.Instances[1].Instance)
	require.Equal(t, int64(1), group.Instances[1].Pending)
	require.Equal(t, int64(1), group.Instances[1].DeadLetters)
	require.Equal(t, topology.ProposalsQueue, ov.Queues[1].Name)
	require.Nil(t, ov.Queues[1].Instances)
	require.Equal(t, int64(1), ov.DeadLetters, "no dead letter counted twice")

	// One queue: the same group; one instance queue, QUEUE@INSTANCE.
	var v httpapi.QueueView
	r = do(t, b.server, "GET", "/api/queues/"+q, "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &v)
	require.Equal(t, int64(3), v.Pending)
	require.Len(t, v.Instances, 2)
	r = do(t, b.server, "GET", "/api/queues/"+q+"@s-2", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	v = httpapi.QueueView{}
	r.json(t, &v)
	require.Equal(t, q, v.Name)
	require.Equal(t, "s-2", v.Instance)
	require.Equal(t, int64(1), v.Pending)
	require.Equal(t, int64(1), v.DeadLetters)
	require.Nil(t, v.Instances)

	var pending struct {
		Queue    string                `json:"queue"`
		Instance string                `json:"instance"`
		Messages []httpapi.MessageView `json:"messages"`
	}
	r = do(t, b.server, "GET", "/api/queues/"+q+"@s-1/pending", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &pending)
	require.Equal(t, q, pending.Queue)
	require.Equal(t, "s-1", pending.Instance)
	require.Len(t, pending.Messages, 2)
	for _, m := range pending.Messages {
		require.Equal(t, q, m.Queue)
		require.Equal(t, "s-1", m.Instance)
	}
	// The queue's pending messages are its instance queues', in turn.
	pending.Messages = nil
	do(t, b.server, "GET", "/api/queues/"+q+"/pending", "", nil).json(t, &pending)
	require.Len(t, pending.Messages, 3)
	require.Equal(t, []string{"s-1", "s-1", "s-2"}, []string{pending.Messages[0].Instance, pending.Messages[1].Instance, pending.Messages[2].Instance})
	pending.Messages = nil
	do(t, b.server, "GET", "/api/queues/"+q+"/pending?limit=2", "", nil).json(t, &pending)
	require.Len(t, pending.Messages, 2)

	for path, want := range map[string]int{
		"/api/queues/" + q + "@nobody":         http.StatusNotFound,
		"/api/queues/" + q + "@nobody/pending": http.StatusNotFound,
		"/api/queues/" + q + "@all":            http.StatusBadRequest,
		"/api/queues/" + q + "@a%20b":          http.StatusBadRequest,
		"/api/queues/" + q + "@s-1@s-2":        http.StatusBadRequest,
		"/api/queues/@s-1/pending":             http.StatusBadRequest,
	} {
		require.Equal(t, want, do(t, b.server, "GET", path, "", nil).status, path)
	}

	// Dead letters: a queue selects its instance queues' too.
	var list struct {
		DeadLetters []httpapi.MessageView `json:"dead_letters"`
	}
	for query, n := range map[string]int{
		"":                                  1,
		"?queue=" + q:                       1,
		"?queue=" + q + "@s-2":              1,
		"?queue=" + q + "@s-1":              0,
		"?instance=s-2":                     1,
		"?instance=s-1":                     0,
		"?queue=" + q + "&instance=s-2":     1,
		"?queue=" + topology.ProposalsQueue: 0,
	} {
		r := do(t, b.server, "GET", "/api/dlq"+query, "", nil)
		require.Equal(t, http.StatusOK, r.status, "%s: %s", query, r.body)
		list.DeadLetters = nil
		r.json(t, &list)
		require.Len(t, list.DeadLetters, n, query)
		if n == 1 {
			require.Equal(t, dead[0], list.DeadLetters[0].ID)
			require.Equal(t, q, list.DeadLetters[0].Queue)
			require.Equal(t, "s-2", list.DeadLetters[0].Instance)
		}
	}
	for _, query := range []string{"?queue=" + q + "@s-1&instance=s-2", "?instance=all", "?queue=bad;name"} {
		require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/dlq"+query, "", nil).status, query)
	}

	// Retry by queue: the dead letter goes back to its instance's queue.
	var retried map[string]int
	r = do(t, b.server, "POST", "/api/dlq/retry", bearer(token), map[string]any{"queue": q})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &retried)
	require.Equal(t, 1, retried["retried"])
	st, err := b.backend.Stats(context.Background(), pubsub.InstanceQueue(q, "s-2"))
	require.NoError(t, err)
	require.Equal(t, int64(2), st.Pending)
	require.Equal(t, int64(0), st.DeadLetters)

	// Purge by instance, and a selection naming two instances is refused.
	// (s-1's queue holds two messages: the first is the one dead-lettered.)
	deadLetter(t, b.backend, pubsub.InstanceQueue(q, "s-1"), `{"r":5}`)
	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"queue": q + "@s-1", "instance": "s-2"})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	var purged map[string]int
	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"instance": "s-2"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &purged)
	require.Equal(t, 0, purged["purged"], "s-2 has no dead letter left")
	r = do(t, b.server, "POST", "/api/dlq/purge", bearer(token), map[string]any{"instance": "s-1"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r.json(t, &purged)
	require.Equal(t, 1, purged["purged"])
}

// pick keeps a view's name and instance.
func pick(v httpapi.QueueView) httpapi.QueueView {
	return httpapi.QueueView{Name: v.Name, Instance: v.Instance}
}
