package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// TestPublishDelayAndTTL checks the publish options and the queue's
// message_ttl: WithDelay and WithDeliverAt schedule the message (counted
// as scheduled, listed with its time), WithTTL and message_ttl stamp its
// expiry, WithTTL winning over message_ttl.
func TestPublishDelayAndTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := openBackend(t)
	cfg := service(t, topology.Singularity, func(c *topology.ServiceConfig) {
		for i := range c.Producers {
			if c.Producers[i].Queue == topology.MetricsQueue {
				c.Producers[i].MessageTTL = time.Hour
			}
		}
	})
	r, err := router.New(router.Config{
		Service: cfg, Backend: b,
		Queues: []string{topology.ConsensusQueue}, Handlers: map[string]router.Handler{topology.HandleConsensusResult: ok},
	})
	require.NoError(t, err)
	pub, err := r.Publisher(topology.MetricsQueue)
	require.NoError(t, err)

	before := time.Now()
	delayed, err := pub.Publish(ctx, []byte("delayed"), router.WithDelay(time.Minute))
	require.NoError(t, err)
	at := time.Date(2099, 12, 24, 18, 0, 0, 0, time.UTC)
	scheduled, err := pub.Publish(ctx, []byte("scheduled"), router.WithDeliverAt(at), router.WithTTL(24*time.Hour*365*80))
	require.NoError(t, err)
	now, err := pub.Publish(ctx, []byte("now"))
	require.NoError(t, err)

	st, err := b.Stats(ctx, topology.MetricsQueue)
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Pending)
	require.Equal(t, int64(2), st.Scheduled)

	ps, err := b.ListPending(ctx, topology.MetricsQueue, 10)
	require.NoError(t, err)
	require.Len(t, ps, 3)
	require.Equal(t, []string{now, delayed, scheduled}, []string{ps[0].ID, ps[1].ID, ps[2].ID})
	require.WithinDuration(t, before.Add(time.Minute), ps[1].AvailableAt, time.Second)
	require.True(t, at.Equal(ps[2].AvailableAt))

	exp, err := time.Parse(time.RFC3339Nano, ps[0].Metadata[pubsub.MetadataExpiresAt])
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(time.Hour), exp, time.Second, "message_ttl applies without WithTTL")
	exp, err = time.Parse(time.RFC3339Nano, ps[2].Metadata[pubsub.MetadataExpiresAt])
	require.NoError(t, err)
	require.True(t, exp.After(at), "WithTTL replaces message_ttl")
}
