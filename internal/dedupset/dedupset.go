// Package dedupset is an in-memory set of dedup keys, each remembered for
// a window with the id of the message it stored. The mem backend keeps its
// queues' dedup keys in one; the NATS backend caches the ids of the keys
// it stored in one. It is not safe for concurrent use: callers lock.
package dedupset

import "time"

// Set maps dedup keys to values (the id of the message that stored the
// key, and what else the caller needs) until each key's window ends.
// Expired keys are dropped as later calls pass them, oldest first, so the
// set holds about one window's keys whatever the traffic, or at most
// Limit keys when Limit is set.
type Set[V any] struct {
	// Limit, when above zero, bounds the keys held: adding one more drops
	// the oldest before its window ends. For a cache, not for a set whose
	// keys must all be kept for the window.
	Limit int

	ids map[string]entry[V]
	// order[start:] are the keys' stamps in the order they were added;
	// those before start were dropped (and cleared). The live part moves
	// to the front once it is the smaller half, in place: a set that
	// stays full reuses one array instead of growing a new one every few
	// thousand adds.
	order []stamp
	start int
}

type entry[V any] struct {
	id      V
	expires time.Time
}

type stamp struct {
	key     string
	expires time.Time
}

// Lookup returns the value stored under key if its window has not ended
// at now.
func (s *Set[V]) Lookup(key string, now time.Time) (V, bool) {
	s.expire(now)
	e, ok := s.ids[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.id, true
}

// Add remembers key with v until now+window, replacing what key held.
func (s *Set[V]) Add(key string, v V, now time.Time, window time.Duration) {
	if s.ids == nil {
		s.ids = map[string]entry[V]{}
	}
	exp := now.Add(window)
	s.ids[key] = entry[V]{id: v, expires: exp}
	s.order = append(s.order, stamp{key: key, expires: exp})
	if s.Limit > 0 && len(s.order)-s.start > s.Limit {
		s.drop(len(s.order) - s.start - s.Limit)
	}
}

// Len returns how many keys the set holds, expired ones not yet dropped
// included.
func (s *Set[V]) Len() int { return len(s.ids) }

// expire drops the keys added first while their windows have ended. A key
// added again later has a later stamp: only its latest one removes it.
// Windows of different lengths (a queue declared again) may leave an
// expired key behind a live one for a while; it is never returned.
func (s *Set[V]) expire(now time.Time) {
	n := 0
	for s.start+n < len(s.order) && !now.Before(s.order[s.start+n].expires) {
		n++
	}
	s.drop(n)
}

// drop forgets the n keys added first (those of them not added again
// since).
func (s *Set[V]) drop(n int) {
	if n == 0 {
		return
	}
	for i := s.start; i < s.start+n; i++ {
		st := s.order[i]
		if e, ok := s.ids[st.key]; ok && e.expires.Equal(st.expires) {
			delete(s.ids, st.key)
		}
		s.order[i] = stamp{}
	}
	s.start += n
	live := len(s.order) - s.start
	switch {
	case cap(s.order) > 1024 && live < cap(s.order)/4:
		// Give the array back once most of it is drained.
		s.order = append(make([]stamp, 0, cap(s.order)/2), s.order[s.start:]...)
		s.start = 0
	case s.start >= live:
		copy(s.order, s.order[s.start:])
		clear(s.order[live:])
		s.order = s.order[:live]
		s.start = 0
	}
}
