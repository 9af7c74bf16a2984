package mem

import (
	"bytes"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/internal/dedupset"
	"github.com/quantumflow/quantumflow/pubsub"
)

// entry is one message in a queue. Its payload and metadata are private
// copies, never modified after publish: deliveries and listings copy them
// again.
//
// A queue may hold millions of entries (a backlog is the point of a
// queue), so an entry is kept small: 128 bytes, plus its payload, its id
// and two string headers per metadata key. SendBatch allocates a batch's
// entries, small payloads and metadata pairs in one block each (see
// there); the metadata is a slice of pairs rather than a map, which for
// the few keys a message carries is a fifth of the bytes; the failure
// record exists only for messages that failed.
type entry struct {
	id      string
	payload []byte
	// metadata is key, value, key, value...: see metadataPairs.
	metadata []string
	priority pubsub.Priority
	// seq orders messages of equal priority: it grows with every publish
	// to the queue (and every dead-letter retry), so it is publish order
	// even when the wall clock steps back.
	seq uint64
	// created is when the message was stored, in Unix nanoseconds: only
	// listed and aged, never compared with a deadline, so the monotonic
	// reading of a time.Time would buy nothing for its 16 more bytes.
	created int64
	// attempts counts deliveries so far.
	attempts int
	// failure is nil until the first failed attempt.
	failure *failure
	// availableAt is when a message waiting for a retry becomes ready;
	// zero once it is. A time.Time, monotonic reading included, as the
	// queue's timer is set from it.
	availableAt time.Time
}

// failure is what a message's failed attempts left.
type failure struct {
	first, last time.Time
	lastError   string
}

// firstFailure returns when e first failed; zero if never.
func (e *entry) firstFailure() time.Time {
	if e.failure == nil {
		return time.Time{}
	}
	return e.failure.first
}

// createdAt returns when e was stored.
func (e *entry) createdAt() time.Time { return time.Unix(0, e.created) }

// readyBefore is delivery order: higher priority, then older.
func readyBefore(a, b *entry) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.seq < b.seq
}

// dueBefore orders messages waiting for a retry by due time.
func dueBefore(a, b *entry) bool {
	if !a.availableAt.Equal(b.availableAt) {
		return a.availableAt.Before(b.availableAt)
	}
	return a.seq < b.seq
}

// entryHeap is a binary min-heap of entries under less. It is written out
// rather than built on container/heap to avoid an interface call per
// comparison on the hot path.
type entryHeap struct {
	items []*entry
	less  func(a, b *entry) bool
}

func (h *entryHeap) len() int { return len(h.items) }

func (h *entryHeap) peek() *entry {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

func (h *entryHeap) push(e *entry) {
	h.items = append(h.items, e)
	h.up(len(h.items) - 1)
}

func (h *entryHeap) pop() *entry {
	n := len(h.items) - 1
	top := h.items[0]
	h.items[0] = h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	if n > 0 {
		h.down(0)
	}
	// Give memory back after a burst: a drained queue should not keep a
	// million-slot array.
	if c := cap(h.items); c > 1024 && n < c/4 {
		h.items = append(make([]*entry, 0, c/2), h.items...)
	}
	return top
}

// remove takes the entry at index i out of the heap.
func (h *entryHeap) remove(i int) {
	n := len(h.items) - 1
	h.items[i] = h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	if i < n {
		h.down(i)
		h.up(i)
	}
}

// index returns the index of the first entry with id, or -1.
func (h *entryHeap) index(id string) int {
	for i, e := range h.items {
		if e.id == id {
			return i
		}
	}
	return -1
}

func (h *entryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			return
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *entryHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			m = r
		}
		if !h.less(h.items[m], h.items[i]) {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}

// firstN returns up to n entries in heap order without changing h: it
// walks the heap from the root with a small frontier heap, so it costs
// O(n log n) whatever the queue's length.
func (h *entryHeap) firstN(n int) []*entry {
	if n <= 0 || len(h.items) == 0 {
		return nil
	}
	out := make([]*entry, 0, min(n, len(h.items)))
	// The frontier holds heap indexes, ordered by their entries.
	type idxHeap struct{ idx []int }
	fr := idxHeap{idx: []int{0}}
	less := func(i, j int) bool { return h.less(h.items[fr.idx[i]], h.items[fr.idx[j]]) }
	push := func(x int) {
		fr.idx = append(fr.idx, x)
		for i := len(fr.idx) - 1; i > 0; {
			p := (i - 1) / 2
			if !less(i, p) {
				break
			}
			fr.idx[i], fr.idx[p] = fr.idx[p], fr.idx[i]
			i = p
		}
	}
	pop := func() int {
		top := fr.idx[0]
		last := len(fr.idx) - 1
		fr.idx[0] = fr.idx[last]
		fr.idx = fr.idx[:last]
		for i := 0; ; {
			l := 2*i + 1
			if l >= len(fr.idx) {
				break
			}
			m := l
			if r := l + 1; r < len(fr.idx) && less(r, l) {
				m = r
			}
			if !less(m, i) {
				break
			}
			fr.idx[i], fr.idx[m] = fr.idx[m], fr.idx[i]
			i = m
		}
		return top
	}
	for len(out) < n && len(fr.idx) > 0 {
		i := pop()
		out = append(out, h.items[i])
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < len(h.items) {
				push(c)
			}
		}
	}
	return out
}

// waiter is an idle subscription waiting for a message.
type waiter struct {
	// wake gets a token when a message may be ready.
	wake chan struct{}
	// queued is true while the waiter is in its queue's list; guarded by
	// the queue's mutex.
	queued bool
}

// counters are what a queue counts since its storage was created.
type counters struct {
	published, delivered, acked, nacked, deadLettered int64
}

// queue is one named queue of a storage.
type queue struct {
	name    string
	st      *store
	created time.Time

	mu        sync.Mutex
	spec      pubsub.QueueSpec
	seq       uint64
	ready     readySet
	scheduled entryHeap
	// timer promotes due messages from scheduled to ready; timerAt is when
	// it is set to fire, zero when it is not pending.
	timer    *time.Timer
	timerAt  time.Time
	inFlight int64
	// leased holds the messages consumers hold (for message detail).
	leased map[*entry]struct{}
	// waiters are idle subscriptions, woken last-in first-out: the most
	// recently idle one is the likeliest to be running.
	waiters []*waiter
	// dedup holds the dedup keys stored within the queue's window.
	dedup   dedupset.Set[string]
	count   counters
	stopped bool
}

func newQueue(st *store, name string) *queue {
	return &queue{
		name:      name,
		st:        st,
		created:   time.Now(),
		spec:      pubsub.DefaultQueueSpec(name),
		ready:     newReadySet(),
		scheduled: entryHeap{less: dueBefore},
		leased:    map[*entry]struct{}{},
	}
}

// take hands out up to n ready messages, or registers w to be woken when
// one may be ready and returns none.
func (q *queue) take(n int, w *waiter) []*entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready.len() > 0 {
		out := make([]*entry, 0, min(n, q.ready.len()))
		for len(out) < n && q.ready.len() > 0 {
			e := q.ready.pop()
			e.attempts++
			q.leased[e] = struct{}{}
			out = append(out, e)
		}
		q.inFlight += int64(len(out))
		q.count.delivered += int64(len(out))
		return out
	}
	if !w.queued {
		w.queued = true
		q.waiters = append(q.waiters, w)
	}
	return nil
}

// wakeLocked wakes up to n idle subscriptions.
func (q *queue) wakeLocked(n int) {
	for ; n > 0 && len(q.waiters) > 0; n-- {
		last := len(q.waiters) - 1
		w := q.waiters[last]
		q.waiters[last] = nil
		q.waiters = q.waiters[:last]
		w.queued = false
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// leave removes a subscription that stops waiting. If it had been woken
// already, the wake-up passes to another so no ready message is stranded.
func (q *queue) leave(w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.queued {
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
		w.queued = false
		return
	}
	if q.ready.len() > 0 {
		q.wakeLocked(1)
	}
}

// giveBack makes a message that reached no consumer ready again, its
// delivery undone.
func (q *queue) giveBack(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e.attempts--
	q.count.delivered--
	q.readyAgainLocked(e)
}

// deferred makes a message received before it was due wait until at, its
// delivery undone.
func (q *queue) deferred(e *entry, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e.attempts--
	q.count.delivered--
	q.settledLocked(e)
	q.scheduleLocked(e, time.Now().Add(delay))
}

// scheduleLocked makes e wait until at.
func (q *queue) scheduleLocked(e *entry, at time.Time) {
	if q.stopped {
		q.ready.push(e)
		q.wakeLocked(1)
		return
	}
	e.availableAt = at
	q.scheduled.push(e)
	q.armLocked()
}

// settledLocked records that no consumer holds e any more.
func (q *queue) settledLocked(e *entry) {
	q.inFlight--
	delete(q.leased, e)
}

// interrupted makes a message whose consumer's subscription ended before
// it settled it ready again, its attempt counted.
func (q *queue) interrupted(e *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.readyAgainLocked(e)
}

func (q *queue) readyAgainLocked(e *entry) {
	q.settledLocked(e)
	q.ready.push(e)
	q.wakeLocked(1)
}

// ack removes a settled message.
func (q *queue) ack(e *entry) {
	q.mu.Lock()
	q.settledLocked(e)
	q.count.acked++
	q.mu.Unlock()
}

// nack makes a failed message available again, now or after delay.
func (q *queue) nack(e *entry, delay time.Duration, lastError string) {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.settledLocked(e)
	q.count.nacked++
	if e.failure == nil {
		e.failure = &failure{first: now}
	}
	e.failure.last = now
	if lastError != "" {
		e.failure.lastError = lastError
	}
	if delay > 0 {
		q.scheduleLocked(e, now.Add(delay))
		return
	}
	q.ready.push(e)
	q.wakeLocked(1)
}

// deadLetter moves a settled message to the storage's dead letters, in one
// step as far as Stats and listings can see.
func (q *queue) deadLetter(e *entry, reason pubsub.DeadLetterReason, lastError string) {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.settledLocked(e)
	q.count.deadLettered++
	first := e.firstFailure()
	if first.IsZero() {
		first = now
	}
	msg := reason.Error
	if msg == "" {
		msg = lastError
	}
	q.st.addDeadLetter(&deadLetter{
		DeadLetter: pubsub.DeadLetter{
			ID:    e.id,
			Queue: q.name,
			// A copy: e.payload may share its block with the rest of
			// its batch, which a dead letter kept for days must not pin.
			Payload:        bytes.Clone(e.payload),
			Metadata:       metadataMap(e.metadata),
			Error:          msg,
			Attempts:       e.attempts,
			Handler:        reason.Handler,
			Service:        reason.Service,
			FirstFailureAt: first,
			LastFailureAt:  now,
			CreatedAt:      now,
		},
	})
}

// armLocked makes the timer fire when the earliest scheduled message is
// due, unless it already fires no later than that.
func (q *queue) armLocked() {
	head := q.scheduled.peek()
	if head == nil || q.stopped {
		return
	}
	if !q.timerAt.IsZero() && !head.availableAt.Before(q.timerAt) {
		return
	}
	q.timerAt = head.availableAt
	d := time.Until(head.availableAt)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.promote)
	} else {
		q.timer.Reset(d)
	}
}

// promote moves every due scheduled message to ready. It runs on the
// queue's timer.
func (q *queue) promote() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timerAt = time.Time{}
	if q.stopped {
		return
	}
	now := time.Now()
	n := 0
	for head := q.scheduled.peek(); head != nil && !head.availableAt.After(now); head = q.scheduled.peek() {
		q.scheduled.pop()
		head.availableAt = time.Time{}
		q.ready.push(head)
		n++
	}
	q.wakeLocked(n)
	q.armLocked()
}

// stop releases the queue's timer when its storage is discarded.
func (q *queue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
}
