package mem_test

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// heldBytesBound is what a queued message of the reliability soak's shape
// (40-byte JSON payload, a 20-byte id, the two metadata keys a router
// publisher adds) may cost in the heap, id and heap slot included. The
// soak holds up to a million of them on mem at once and must stay under
// 1 GiB of RSS, which the garbage collector's headroom makes about twice
// the live heap. It measured 598 bytes when entries held a cloned map
// and three times; 271 now.
const heldBytesBound = 320

// heldBytes publishes n messages of the soak's shape to a fresh storage
// and returns the live heap they add, per message.
func heldBytes(t *testing.T, n int) float64 {
	be := open(t, "mem://")
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	publish := func(from, to int) {
		msgs := make([]*message.Message, 0, to-from)
		for i := from; i < to; i++ {
			body := fmt.Appendf(nil, `{"n":%d,"sent":%d}`, i, time.Now().UnixNano())
			m := message.NewMessage("soak-0a1b2c-"+strconv.Itoa(i), body)
			m.Metadata.Set("quantumflow_published_at", stamp)
			m.Metadata.Set(pubsub.MetadataOrigin, "sg-1")
			msgs = append(msgs, m)
		}
		require.NoError(t, be.Publisher().Publish("q", msgs...))
	}
	// A first batch creates the queue and whatever else is paid once.
	publish(0, 100)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 100; i < n+100; i += 100 {
		publish(i, i+100)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(be)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestHeldMessageFootprint guards the bytes a waiting message costs, which
// bound how large a backlog mem holds in a given memory. Not parallel: it
// reads the process's heap, which other tests would change under it.
func TestHeldMessageFootprint(t *testing.T) {
	per := heldBytes(t, 50_000)
	t.Logf("%.0f bytes per held message", per)
	require.Less(t, per, float64(heldBytesBound), "bytes per held message")
}
