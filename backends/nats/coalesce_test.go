package nats_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

// TestConcurrentSinglePublishes checks the merging of concurrent
// single-message publishes (coalesce.go): 32 publishers of one message
// per call, a fifth of them with a context that ends at a random moment
// (before, during or after their group is sent). Every publish that
// returned nil is stored, and nothing is stored twice, however the
// leaders' contexts ended.
func TestConcurrentSinglePublishes(t *testing.T) {
	t.Parallel()
	url := server(t).ClientURL()
	b := openBackend(t, url)
	const queue = "singles"
	const publishers, each = 32, 100
	var mu sync.Mutex
	var published []string
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithCancel(t.Context())
				if rand.IntN(5) == 0 {
					time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
				}
				m := message.NewMessage(fmt.Sprintf("p%d-%d", p, i), []byte("x"))
				m.SetContext(ctx)
				err := b.Publisher().Publish(queue, m)
				cancel()
				if err == nil {
					mu.Lock()
					published = append(published, m.UUID)
					mu.Unlock()
				} else {
					require.ErrorIs(t, err, context.Canceled, "publish %s", m.UUID)
				}
			}
		})
	}
	wg.Wait()
	require.Greater(t, len(published), publishers*each/2, "most publishes went through")

	stream := rawStream(t, url, "QF_"+queue)
	info, err := stream.Info(t.Context())
	require.NoError(t, err)
	stored := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		require.NoError(t, err)
		stored[m.Header.Get("Nats-Msg-Id")]++
	}
	for id, n := range stored {
		if n != 1 {
			require.Equal(t, 1, n, "message %s stored %d times", id, n)
		}
	}
	var lost []string
	for _, id := range published {
		if stored[id] == 0 {
			lost = append(lost, id)
		}
	}
	require.Empty(t, lost, "published but not stored")
}
