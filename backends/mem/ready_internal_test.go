package mem

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// TestReadySetKeepsDeliveryOrder drives a readySet and a sorted slice with
// the same random pushes (new messages, and messages coming back out of
// seq order), pops and removals, and checks that they agree at every step:
// pops, length, listings and the oldest message.
func TestReadySetKeepsDeliveryOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	s := newReadySet()
	var model, taken []*entry
	var seq uint64
	sortModel := func() {
		slices.SortFunc(model, func(a, b *entry) int {
			if readyBefore(a, b) {
				return -1
			}
			return 1
		})
	}
	for step := range 20000 {
		switch op := rng.IntN(10); {
		case op < 4: // publish
			seq++
			e := &entry{id: strconv.FormatUint(seq, 10), seq: seq, priority: pubsub.Priority(rng.IntN(3)), created: int64(seq) * 10} // stored in seq order
			s.push(e)
			model = append(model, e)
		case op < 6 && len(taken) > 0: // a taken message comes back
			i := rng.IntN(len(taken))
			e := taken[i]
			taken = slices.Delete(taken, i, i+1)
			s.push(e)
			model = append(model, e)
		case op < 9 && len(model) > 0:
			sortModel()
			got := s.pop()
			require.Same(t, model[0], got, "step %d: pop", step)
			model = model[1:]
			taken = append(taken, got)
		case op == 9 && len(model) > 0:
			id := model[rng.IntN(len(model))].id
			require.Equal(t, 1, s.remove(id), "step %d: remove", step)
			model = slices.DeleteFunc(model, func(e *entry) bool { return e.id == id })
			require.Nil(t, s.find(id))
		}
		require.Equal(t, len(model), s.len(), "step %d: len", step)
		if step%97 == 0 {
			sortModel()
			require.Equal(t, model[:min(5, len(model))], s.firstN(5), "step %d: firstN", step)
			oldest, ok := s.oldestCreated()
			require.Equal(t, len(model) > 0, ok)
			for _, e := range model {
				require.LessOrEqual(t, oldest, e.created)
			}
			n := 0
			for range s.all {
				n++
			}
			require.Equal(t, len(model), n, "step %d: all", step)
		}
	}
}
