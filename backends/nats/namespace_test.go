package nats_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestNamespace: backends opened in two namespaces on one server, and one
// without, see only their own queues, dead letters and instances; the
// namespaces are "demo" and "demo_a" with queues "a_q" and "q", whose
// streams a prefix naively made of the namespace would share.
// DropNamespace deletes every stream and bucket of its namespace and
// nothing else.
func TestNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := server(t)
	plain := openBackend(t, srv.ClientURL())
	require.NoError(t, plain.Publisher().Publish("q", message.NewMessage("outside", []byte("outside"))))
	openNS := func(ns string) *pubsub.Backend {
		b, err := pubsub.Open(ctx, srv.ClientURL(), pubsub.WithNamespace(ns), pubsub.WithLogger(testLogger(t)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	demo, demoA := openNS("demo"), openNS("demo_a")

	require.NoError(t, demo.Publisher().Publish("a_q", message.NewMessage("in-demo", []byte("in demo"))))
	require.NoError(t, demoA.Publisher().Publish("q", message.NewMessage("in-demo_a-1", []byte("in demo_a")), message.NewMessage("in-demo_a-2", []byte("in demo_a"))))
	for b, want := range map[*pubsub.Backend][]string{plain: {"q"}, demo: {"a_q"}, demoA: {"q"}} {
		qs, err := b.ListQueues(ctx)
		require.NoError(t, err)
		var got []string
		for _, q := range qs {
			got = append(got, q.Name)
		}
		require.Equal(t, want, got)
	}
	for b, want := range map[*pubsub.Backend]int64{plain: 1, demoA: 2} {
		st, err := b.Stats(ctx, "q")
		require.NoError(t, err)
		require.Equal(t, want, st.Pending)
	}

	// A dead letter of demo is in demo's dead letters only.
	m := pubsubtest.Receive(t, subscribe(t, demo, "a_q"))
	require.Equal(t, "in-demo", m.UUID)
	pubsub.DeliveryOf(m).MarkDeadLetter(pubsub.DeadLetterReason{Error: "poison"})
	m.Ack()
	require.Eventually(t, func() bool {
		dls, err := demo.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
		return err == nil && len(dls) == 1
	}, 10*time.Second, 10*time.Millisecond)
	for _, b := range []*pubsub.Backend{plain, demoA} {
		dls, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
		require.NoError(t, err)
		require.Empty(t, dls)
	}

	inst := pubsub.Instance{Service: "singularity", ID: "sg-1", Nonce: "n1", HeartbeatAt: time.Now()}
	_, err := demo.Driver().(pubsub.InstanceStore).PutInstance(ctx, inst, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	insts, err := demoA.Driver().(pubsub.InstanceStore).ListInstances(ctx)
	require.NoError(t, err)
	require.Empty(t, insts, "demo's instance is not demo_a's")
	require.NoError(t, demo.RecordAudit(ctx, pubsub.AuditEntry{Role: pubsub.AuditRoleCLI, Action: "dlq.purge", Count: 1}))
	audit, err := demoA.Audit(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, audit, "demo's audit log is not demo_a's")

	before := streamNames(t, srv.ClientURL())
	require.NoError(t, demo.DropNamespace(ctx))
	after := streamNames(t, srv.ClientURL())
	var dropped []string
	for _, s := range before {
		if !slices.Contains(after, s) {
			dropped = append(dropped, s)
		}
	}
	require.ElementsMatch(t, []string{"QF-demo_a_q", "QF-demo-DLQ", "QF-demo-STATE", "QF-demo-AUDIT", "KV_QF-demo-REGISTRY"}, dropped)
	require.Len(t, after, len(before)-len(dropped), "nothing made")

	for b, want := range map[*pubsub.Backend]int64{plain: 1, demoA: 2} {
		st, err := b.Stats(ctx, "q")
		require.NoError(t, err, "the queue outside the namespace is untouched")
		require.Equal(t, want, st.Pending, "the queue outside the namespace is untouched")
	}
	m = pubsubtest.Receive(t, subscribe(t, demoA, "q"))
	require.Equal(t, "in-demo_a-1", m.UUID)
	m.Ack()
}

// streamNames lists every stream on the server at url.
func streamNames(t *testing.T, url string) []string {
	t.Helper()
	lister := rawJetStream(t, url).StreamNames(t.Context())
	var out []string
	for name := range lister.Name() {
		out = append(out, name)
	}
	require.NoError(t, lister.Err())
	return out
}
