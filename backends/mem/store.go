package mem

import (
	"cmp"
	"slices"
	"strconv"
	"sync"

	"github.com/quantumflow/quantumflow/pubsub"
)

// store is one storage: queues and dead letters shared by every backend
// opened on it.
type store struct {
	name string
	// refs counts the backends that have the storage open; guarded by
	// storesMu.
	refs int

	// queues maps a name to its *queue. Reads vastly outnumber creations,
	// so lookups on the publish path take no lock.
	queues sync.Map

	// dlMu guards the dead letters. Lock order: a queue's mu, then dlMu.
	dlMu      sync.Mutex
	dead      map[string]*deadLetter
	deadCount map[string]int64
	dlSeq     uint64

	reg   registry
	audit auditLog

	// pausedMu guards paused: the queues paused.
	pausedMu sync.Mutex
	paused   map[string]bool
}

// deadLetter is a stored dead letter.
type deadLetter struct {
	pubsub.DeadLetter
	// seq orders dead letters, newest last.
	seq uint64
}

func newStore(name string) *store {
	return &store{name: name, dead: map[string]*deadLetter{}, deadCount: map[string]int64{}, paused: map[string]bool{}}
}

// queue returns the named queue, creating it with default settings.
func (s *store) queue(name string) *queue {
	if q, ok := s.queues.Load(name); ok {
		return q.(*queue)
	}
	q, _ := s.queues.LoadOrStore(name, newQueue(s, name))
	return q.(*queue)
}

// lookup returns the named queue, or nil if nobody declared, published to
// or subscribed to it.
func (s *store) lookup(name string) *queue {
	if q, ok := s.queues.Load(name); ok {
		return q.(*queue)
	}
	return nil
}

// shutdown stops the storage's timers once the last backend closed.
func (s *store) shutdown() {
	s.queues.Range(func(_, q any) bool {
		q.(*queue).stop()
		return true
	})
}

// addDeadLetter stores dl. A message dead-lettered again under the same id
// replaces the earlier record.
func (s *store) addDeadLetter(dl *deadLetter) {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	if old := s.dead[dl.ID]; old != nil {
		s.deadCount[old.Queue]--
	}
	s.dlSeq++
	dl.seq = s.dlSeq
	s.dead[dl.ID] = dl
	s.deadCount[dl.Queue]++
}

// removeDeadLetterLocked deletes the dead letter with id.
func (s *store) removeDeadLetterLocked(dl *deadLetter) {
	delete(s.dead, dl.ID)
	if s.deadCount[dl.Queue]--; s.deadCount[dl.Queue] <= 0 {
		delete(s.deadCount, dl.Queue)
	}
}

// selectDeadLettersLocked returns the dead letters q selects, newest first,
// at most limit of them when limit > 0.
func (s *store) selectDeadLettersLocked(q pubsub.DeadLetterQuery, limit int) []*deadLetter {
	var out []*deadLetter
	if len(q.IDs) > 0 {
		for _, id := range q.IDs {
			if dl := s.dead[id]; dl != nil && (q.Queue == "" || dl.Queue == q.Queue) && !slices.Contains(out, dl) {
				out = append(out, dl)
			}
		}
	} else {
		for _, dl := range s.dead {
			if q.Queue == "" || dl.Queue == q.Queue {
				out = append(out, dl)
			}
		}
	}
	slices.SortFunc(out, func(a, b *deadLetter) int { return cmp.Compare(b.seq, a.seq) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// explicitPriority returns the priority a message's metadata gives it.
func explicitPriority(md map[string]string) (pubsub.Priority, bool) {
	v, ok := md[pubsub.MetadataPriority]
	if !ok || v == "" {
		return 0, false
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return pubsub.Priority(p), true
}
