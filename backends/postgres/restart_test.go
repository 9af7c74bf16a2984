package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// TestDatabaseRestart restarts PostgreSQL twice (a fast shutdown, then a
// crash) while messages are published and consumed. Every message whose
// Publish returned nil is received, and publishers and consumers carry on
// without being restarted.
//
// Not parallel: it restarts the server the other tests use.
func TestDatabaseRestart(t *testing.T) {
	cluster := pgtest.Shared(t)
	if cluster.External() {
		t.Skip("cannot restart an external server")
	}
	ctx := context.Background()
	db := withParams(pgtest.Database(t), "lease", "2s")
	pub := open(t, db)
	sub := open(t, db)
	const queue = "restart"

	var (
		mu        sync.Mutex
		confirmed = map[string]bool{}
		received  = map[string]int{}
		failures  atomic.Int64
	)
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	for p := range 3 {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := []*message.Message{newMsg(fmt.Sprintf("%d-%d", p, i))}
				if i%3 == 0 {
					for j := range 9 {
						batch = append(batch, newMsg(fmt.Sprintf("%d-%d-%d", p, i, j)))
					}
				}
				if err := pub.Publisher().Publish(queue, batch...); err != nil {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				for _, m := range batch {
					confirmed[m.UUID] = true
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for range 3 {
		ch := subscribe(t, sub, queue)
		go func() {
			for m := range ch {
				mu.Lock()
				received[m.UUID]++
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	progress := func(what string) {
		t.Helper()
		mu.Lock()
		c0, r0 := len(confirmed), len(received)
		mu.Unlock()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(confirmed) >= c0+300 && len(received) >= r0+300
		}, 60*time.Second, 10*time.Millisecond, "publishing and consuming %s", what)
	}

	progress("before the restarts")
	require.NoError(t, cluster.Restart(ctx))
	progress("after a fast shutdown and start")
	require.NoError(t, cluster.Kill(ctx))
	progress("after a crash and recovery")
	close(stop)
	pubWG.Wait()

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range confirmed {
			if received[id] == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "every confirmed message received")
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, n := range received {
		if n > 1 {
			dups++
		}
	}
	t.Logf("%d messages confirmed, %d received (%d more than once), %d failed publishes during the outages",
		len(confirmed), len(received), dups, failures.Load())
}

// TestDatabaseGone stops the database for good under a backend: publishes
// fail (they do not hang), and Close returns promptly.
func TestDatabaseGone(t *testing.T) {
	t.Parallel()
	if pgtest.Shared(t).External() {
		t.Skip("needs a server of its own")
	}
	ctx := context.Background()
	cluster, err := pgtest.Start(ctx)
	require.NoError(t, err)
	defer cluster.Stop()
	db, err := cluster.NewDatabase(ctx)
	require.NoError(t, err)
	b := open(t, db)
	ch := subscribe(t, b, "q")
	require.NoError(t, b.Publisher().Publish("q", newMsg("1"), newMsg("2")))
	m := pubsubtest.Receive(t, ch)
	require.NoError(t, cluster.Stop())

	require.Error(t, b.Publisher().Publish("q", newMsg("3")))
	m.Ack() // cannot be written: the backend keeps trying until Close gives up
	start := time.Now()
	err = b.Close()
	t.Logf("Close took %s: %v", time.Since(start), err)
	require.Less(t, time.Since(start), 30*time.Second)
}
