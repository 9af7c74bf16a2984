package nats_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestConsumerKilledMidBatch kills (SIGKILL) a consumer process while it
// holds messages unsettled and is acking others: nothing is lost, the
// held messages come back after ack_wait as a second attempt. A message
// the child reported acking may not have been acked: then it comes back
// too, and the queue must be empty at the end either way.
func TestConsumerKilledMidBatch(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	url := srv.ClientURL() + "?ack_wait=2s"
	const queue = "killed_consumer"

	b := openBackend(t, url)
	published := newIDSet()
	for range 5 {
		msgs := newMessages(100, "work")
		require.NoError(t, b.Publisher().Publish(queue, msgs...))
		published.add(idsOf(msgs)...)
	}

	c := startChild(t, "consumer", "QF_NATS_URL="+url, "QF_NATS_QUEUE="+queue)
	childAcking, held := newIDSet(), newIDSet()
	for childAcking.len() < 100 || held.len() < 3 {
		select {
		case line, ok := <-c.lines:
			require.True(t, ok, "consumer child exited early")
			kind, id, _ := strings.Cut(line, " ")
			switch kind {
			case "acking":
				childAcking.add(id)
			case "held":
				held.add(id)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("child acking %d and holding %d after 30s", childAcking.len(), held.len())
		}
	}
	c.kill()
	for line := range c.lines { // what it wrote before dying
		if id, ok := strings.CutPrefix(line, "acking "); ok {
			childAcking.add(id)
		}
	}
	t.Logf("child acking %d messages and holding %d when killed", childAcking.len(), held.len())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := newIDSet()
	attempts, attemptsMu := map[string]int{}, &sync.Mutex{}
	wait := consumeInto(t, ctx, b, queue, 4, received, attempts, attemptsMu)
	if missing := waitMissing(published, 30*time.Second, childAcking, received); len(missing) > 0 {
		// Say where the messages are: a queue left empty (every message
		// acked) points at the test's reading of the child's lines, one
		// still pending or waiting for an ack at the engine or the server.
		t.Errorf("%d of %d messages not received in 30s (e.g. %s, held by the child: %v); %s",
			len(missing), published.len(), missing[0], held.has(missing[0]), killedMidBatchState(t, b, url, queue))
		start := time.Now()
		missing = waitMissing(published, time.Minute, childAcking, received)
		t.Fatalf("after a minute more, %d missing (%s later); %s", len(missing), time.Since(start), killedMidBatchState(t, b, url, queue))
	}
	for _, id := range held.missing() {
		require.True(t, received.has(id), "held message %s came back", id)
		attemptsMu.Lock()
		require.Equal(t, 2, attempts[id], "attempt of held message %s after the crash", id)
		attemptsMu.Unlock()
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := b.Stats(context.Background(), queue)
		if assert.NoError(c, err) {
			assert.Equal(c, [3]int64{0, 0, 0}, [3]int64{st.Pending, st.InFlight, st.Scheduled}, "counters %v", st.Counters)
		}
	}, 10*time.Second, 20*time.Millisecond, "queue empty once everything is acked")
	cancel()
	wait()
}

// killedMidBatchState describes the queue's consumer and the backend's
// figures for the queue.
func killedMidBatchState(t *testing.T, b *pubsub.Backend, url, queue string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := b.Stats(ctx, queue)
	out := fmt.Sprintf("stats %+v (error %v)", st, err)
	c, err := rawStream(t, url, "QF_"+queue).Consumer(ctx, "workers")
	if err != nil {
		return out + fmt.Sprintf("; consumer: %v", err)
	}
	ci := c.CachedInfo()
	return out + fmt.Sprintf("; consumer: %d pending, %d waiting for an ack, %d redelivered, %d pull requests waiting, delivered %+v, ack floor %+v",
		ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered, ci.AckFloor)
}

// TestServerRestart restarts the NATS server (same data directory and
// port) while publishers and consumers run on one backend, gracefully
// in process and by SIGKILL of a server process: no message whose Publish
// returned nil is lost, and the same backend carries on.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	t.Run("Graceful", func(t *testing.T) {
		t.Parallel()
		gracefulRestartCase(t, "", nil)
	})
	t.Run("MemoryConsumers", func(t *testing.T) {
		// The restart deletes the queue's consumer: the backend creates it
		// again and gets every message.
		t.Parallel()
		gracefulRestartCase(t, "&consumer_storage=memory", func(url string) {
			c, err := rawStream(t, url, "QF_restarted_server").Consumer(t.Context(), "workers")
			require.NoError(t, err)
			require.True(t, c.CachedInfo().Config.MemoryStorage)
		})
	})
	t.Run("Killed", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		c, url := startServerChild(t, dir, 0)
		port := url[strings.LastIndexByte(url, ':')+1:]
		restart := func() {
			c.kill()
			var portNum int
			_, _ = fmt.Sscan(port, &portNum)
			c, _ = startServerChild(t, dir, portNum)
		}
		serverRestartCase(t, url, "", restart)
	})
}

// gracefulRestartCase runs serverRestartCase on an embedded server that
// restarts in process, calling before (unless nil) before each restart.
func gracefulRestartCase(t *testing.T, params string, before func(url string)) {
	dir := t.TempDir()
	srv, err := embedded.Start(t.Context(), embedded.Options{DataDir: dir})
	require.NoError(t, err)
	port := srv.Port()
	restart := func() {
		if before != nil {
			before(srv.ClientURL())
		}
		require.NoError(t, srv.Close())
		srv, err = embedded.Start(t.Context(), embedded.Options{DataDir: dir, Port: port})
		require.NoError(t, err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	serverRestartCase(t, srv.ClientURL(), params, restart)
}

// serverRestartCase runs TestServerRestart's case on the server at url,
// with more URL parameters (each after a '&').
func serverRestartCase(t *testing.T, url, params string, restart func()) {
	const queue = "restarted_server"
	b := openBackend(t, url+"?ack_wait=2s"+params)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	published, received := newIDSet(), newIDSet()
	wait := consumeInto(t, ctx, b, queue, 4, received, nil, nil)
	var publishErrors atomic.Int64
	var pubs sync.WaitGroup
	for p := range 3 {
		pubs.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				n := 1
				if (p+i)%2 == 1 {
					n = 10
				}
				msgs := newMessages(n, "restart")
				if err := b.Publisher().Publish(queue, msgs...); err != nil {
					publishErrors.Add(1)
					continue
				}
				published.add(idsOf(msgs)...)
			}
		})
	}
	atLeast := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return published.len() >= n && received.len() >= n/2 }, 30*time.Second, 10*time.Millisecond,
			"published %d, received %d", published.len(), received.len())
	}
	start := time.Now()
	atLeast(2000)
	before := published.len()
	t.Logf("%s: %d published, %d received; restarting the server", time.Since(start), before, received.len())
	restart()
	t.Logf("%s: server restarted", time.Since(start))
	// The same backend publishes and consumes again, without reopening.
	atLeast(before + 2000)
	t.Logf("%s: %d published, %d received", time.Since(start), published.len(), received.len())
	cancel()
	pubs.Wait()
	wait()

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	wait2 := consumeInto(t, ctx2, b, queue, 4, received, nil, nil)
	waitAll(t, published, 30*time.Second, received)
	t.Logf("published %d messages (%d Publish calls failed during the restart), all received", published.len(), publishErrors.Load())
	cancel2()
	wait2()
}

// TestClusterNodeLoss runs a 3-node JetStream cluster on loopback with
// queues replicated 3 times, and kills the node leading the queue's stream
// while 6k messages flow: nothing is lost and consumers carry on. (With
// every delivery and ack a Raft round under -race, a CI machine running
// every package at once moved 20k too slowly for the waits below.) The
// queue's consumer survives, its state on file or in memory.
func TestClusterNodeLoss(t *testing.T) {
	t.Parallel()
	for _, storage := range []string{"file", "memory"} {
		t.Run(storage, func(t *testing.T) {
			t.Parallel()
			clusterNodeLossCase(t, "&consumer_storage="+storage)
		})
	}
}

// clusterNodeLossCase runs TestClusterNodeLoss's case with more URL
// parameters (each after a '&').
func clusterNodeLossCase(t *testing.T, params string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := embedded.StartCluster(t.Context(), 3, embedded.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	urls := cl.ClientURLs()
	// prefetch=10: with replicas=3 every delivery and ack is a Raft
	// round, so one message per pull would make this test slow under -race.
	url := urls[0] + "?replicas=3&ack_wait=2s&prefetch=10" + params + "&servers=" + urls[1] + "," + urls[2]
	const queue, total = "replicated", 6000

	pub := openBackend(t, url)
	cons := openBackend(t, url)
	require.NoError(t, pub.DeclareQueue(ctx, pubsub.QueueSpec{Name: queue}))

	published, received := newIDSet(), newIDSet()
	wait := consumeInto(t, ctx, cons, queue, 8, received, nil, nil)
	var publishErrors atomic.Int64
	var pubs sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		pubs.Go(func() {
			for next.Add(100) <= total {
				// Keep messages flowing rather than all published up front.
				for published.len()-received.len() > 2000 && ctx.Err() == nil {
					time.Sleep(time.Millisecond)
				}
				msgs := newMessages(100, "replicated")
				for {
					err := pub.Publisher().Publish(queue, msgs...)
					if err == nil {
						break
					}
					// Retrying the same messages is safe: their ids dedup.
					publishErrors.Add(1)
				}
				published.add(idsOf(msgs)...)
			}
		})
	}

	start := time.Now()
	require.Eventually(t, func() bool { return received.len() >= total/4 }, 60*time.Second, 10*time.Millisecond)
	leader := streamLeader(t, urls, "QF_"+queue)
	created := consumerCreated(t, urls, "QF_"+queue)
	t.Logf("%s: killing %s, the stream leader, with %d published and %d received", time.Since(start), leader, published.len(), received.len())
	require.NoError(t, cl.StopNode(nodeIndex(t, leader)))
	t.Logf("%s: killed, %d published and %d received", time.Since(start), published.len(), received.len())

	pubs.Wait()
	require.Equal(t, total, published.len())
	t.Logf("%s: all published, %d received", time.Since(start), received.len())
	waitAll(t, published, 90*time.Second, received)
	t.Logf("%s: all %d messages received after losing a node (%d Publish calls retried)", time.Since(start), total, publishErrors.Load())
	require.Equal(t, created, consumerCreated(t, urls, "QF_"+queue), "the consumer is the one from before")
	cancel()
	wait()
}

// streamLeader returns the name of the server leading a stream.
func streamLeader(t *testing.T, urls []string, stream string) string {
	t.Helper()
	st, err := rawJetStream(t, strings.Join(urls, ",")).Stream(context.Background(), stream)
	require.NoError(t, err)
	info := st.CachedInfo()
	require.NotNil(t, info.Cluster)
	require.NotEmpty(t, info.Cluster.Leader)
	return info.Cluster.Leader
}

// consumerCreated returns when the queue consumer of a stream was created.
func consumerCreated(t *testing.T, urls []string, stream string) time.Time {
	t.Helper()
	c, err := rawJetStream(t, strings.Join(urls, ",")).Consumer(context.Background(), stream, "workers")
	require.NoError(t, err)
	return c.CachedInfo().Created
}

// nodeIndex maps an embedded cluster node name (qf-n1...) to its index.
func nodeIndex(t *testing.T, name string) int {
	t.Helper()
	var i int
	_, err := fmt.Sscanf(name, "qf-n%d", &i)
	require.NoError(t, err)
	return i - 1
}
