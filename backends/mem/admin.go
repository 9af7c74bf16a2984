package mem

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Init has nothing to create: the storage exists from the first Open.
func (d *driver) Init(context.Context) error { return d.check() }

// DeclareQueue creates the queue or updates its settings, as given. A new
// priority applies to messages published from then on.
func (d *driver) DeclareQueue(_ context.Context, spec pubsub.QueueSpec) error {
	if err := d.check(); err != nil {
		return err
	}
	q := d.st.queue(spec.Name)
	q.mu.Lock()
	q.spec = spec
	q.mu.Unlock()
	return nil
}

// ListQueues lists every queue declared, published to or subscribed to.
func (d *driver) ListQueues(context.Context) ([]pubsub.QueueInfo, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	var out []pubsub.QueueInfo
	d.st.queues.Range(func(_, v any) bool {
		q := v.(*queue)
		q.mu.Lock()
		out = append(out, pubsub.QueueInfo{
			Name:        q.name,
			Priority:    q.spec.Priority,
			MaxRetries:  q.spec.MaxRetries,
			RetryDelay:  q.spec.RetryDelay,
			DedupWindow: q.spec.DedupWindow,
			CreatedAt:   q.created,
		})
		q.mu.Unlock()
		return true
	})
	slices.SortFunc(out, func(a, b pubsub.QueueInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// known returns the named queue or an error wrapping ErrQueueNotFound.
func (d *driver) known(name string) (*queue, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	q := d.st.lookup(name)
	if q == nil {
		return nil, pubsub.ErrQueueNotFound
	}
	return q, nil
}

// Stats returns an exact snapshot of the queue, taken under its lock.
// OldestPendingAge scans the ready messages (the heap is ordered by
// priority first), so it costs O(pending); the hot paths never do.
func (d *driver) Stats(_ context.Context, name string) (pubsub.QueueStats, error) {
	q, err := d.known(name)
	if err != nil {
		return pubsub.QueueStats{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	st := pubsub.QueueStats{
		Queue:     q.name,
		Pending:   int64(q.ready.len()),
		InFlight:  q.inFlight,
		Scheduled: int64(q.scheduled.len()),
		Counters: map[string]int64{
			"published":     q.count.published,
			"delivered":     q.count.delivered,
			"acked":         q.count.acked,
			"nacked":        q.count.nacked,
			"dead_lettered": q.count.deadLettered,
		},
	}
	if oldest, ok := q.ready.oldestCreated(); ok {
		st.OldestPendingAge = max(time.Since(time.Unix(0, oldest)), time.Nanosecond)
	}
	d.st.dlMu.Lock()
	st.DeadLetters = d.st.deadCount[q.name]
	d.st.dlMu.Unlock()
	return st, nil
}

// ListPending lists ready messages in delivery order, then messages
// waiting for a retry by due time.
func (d *driver) ListPending(_ context.Context, name string, limit int) ([]pubsub.PendingMessage, error) {
	q, err := d.known(name)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	entries := q.ready.firstN(limit)
	if len(entries) < limit {
		entries = append(entries, q.scheduled.firstN(limit-len(entries))...)
	}
	out := make([]pubsub.PendingMessage, len(entries))
	for i, e := range entries {
		out[i] = pubsub.PendingMessage{
			ID:          e.id,
			Queue:       q.name,
			CreatedAt:   e.createdAt(),
			Attempts:    e.attempts,
			Priority:    e.priority,
			Payload:     bytes.Clone(e.payload),
			Metadata:    metadataMap(e.metadata),
			AvailableAt: e.availableAt,
		}
	}
	return out, nil
}

// ListDeadLetters lists the selected dead letters, newest first.
func (d *driver) ListDeadLetters(_ context.Context, query pubsub.DeadLetterQuery) ([]pubsub.DeadLetter, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	d.st.dlMu.Lock()
	defer d.st.dlMu.Unlock()
	sel := d.st.selectDeadLettersLocked(query, query.Limit)
	out := make([]pubsub.DeadLetter, len(sel))
	for i, dl := range sel {
		out[i] = dl.DeadLetter
		out[i].Payload = bytes.Clone(dl.Payload)
		out[i].Metadata = maps.Clone(dl.Metadata)
	}
	return out, nil
}

// RetryDeadLetters puts the selected dead letters back on their queues as
// new messages: attempts and failure times reset, payload, metadata and id
// kept, behind what is already queued at their priority. Each queue's
// share moves in one step.
func (d *driver) RetryDeadLetters(_ context.Context, query pubsub.DeadLetterQuery) (int, error) {
	if err := d.check(); err != nil {
		return 0, err
	}
	d.st.dlMu.Lock()
	byQueue := map[string][]string{}
	for _, dl := range d.st.selectDeadLettersLocked(query, query.Limit) {
		byQueue[dl.Queue] = append(byQueue[dl.Queue], dl.ID)
	}
	d.st.dlMu.Unlock()

	moved := 0
	for _, name := range slices.Sorted(maps.Keys(byQueue)) {
		moved += d.retryInto(d.st.queue(name), byQueue[name])
	}
	return moved, nil
}

// retryInto moves the dead letters with ids, if still there, onto q. The
// dead letters are listed newest first; they go back oldest first.
func (d *driver) retryInto(q *queue, ids []string) int {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	d.st.dlMu.Lock()
	defer d.st.dlMu.Unlock()
	n := 0
	for _, id := range slices.Backward(ids) {
		dl := d.st.dead[id]
		if dl == nil || dl.Queue != q.name {
			continue
		}
		d.st.removeDeadLetterLocked(dl)
		prio, ok := explicitPriority(dl.Metadata)
		if !ok {
			prio = q.spec.Priority
		}
		q.seq++
		q.ready.push(&entry{
			id:       dl.ID,
			payload:  dl.Payload,
			metadata: appendMetadata(make([]string, 0, 2*len(dl.Metadata)), dl.Metadata),
			priority: prio,
			created:  now.UnixNano(),
			seq:      q.seq,
		})
		n++
	}
	q.wakeLocked(n)
	return n
}

// PurgeDeadLetters deletes the selected dead letters.
func (d *driver) PurgeDeadLetters(_ context.Context, query pubsub.DeadLetterQuery) (int, error) {
	if err := d.check(); err != nil {
		return 0, err
	}
	d.st.dlMu.Lock()
	defer d.st.dlMu.Unlock()
	sel := d.st.selectDeadLettersLocked(query, query.Limit)
	for _, dl := range sel {
		d.st.removeDeadLetterLocked(dl)
	}
	return len(sel), nil
}
