package mem

import (
	"bytes"
	"context"
	"fmt"

	"github.com/quantumflow/quantumflow/pubsub"
)

var (
	_ pubsub.QueuePauser  = (*driver)(nil)
	_ pubsub.MessageStore = (*driver)(nil)
)

// SetQueuePaused records whether queue is paused, for every backend on
// the storage.
func (d *driver) SetQueuePaused(_ context.Context, queue string, paused bool) error {
	if err := d.check(); err != nil {
		return err
	}
	d.st.pausedMu.Lock()
	defer d.st.pausedMu.Unlock()
	if paused {
		d.st.paused[queue] = true
	} else {
		delete(d.st.paused, queue)
	}
	return nil
}

// PausedQueues returns the storage's paused queues.
func (d *driver) PausedQueues(context.Context) ([]string, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	d.st.pausedMu.Lock()
	defer d.st.pausedMu.Unlock()
	out := make([]string, 0, len(d.st.paused))
	for q := range d.st.paused {
		out = append(out, q)
	}
	return out, nil
}

// queuesOf returns queue, or with "" every queue of the storage.
func (d *driver) queuesOf(name string) []*queue {
	if name != "" {
		if q := d.st.lookup(name); q != nil {
			return []*queue{q}
		}
		return nil
	}
	var out []*queue
	d.st.queues.Range(func(_, q any) bool {
		out = append(out, q.(*queue))
		return true
	})
	return out
}

// GetMessage finds message id among the ready, scheduled and held
// messages of queue (or of every queue).
func (d *driver) GetMessage(_ context.Context, queue, id string) (pubsub.MessageDetail, error) {
	if err := d.check(); err != nil {
		return pubsub.MessageDetail{}, err
	}
	for _, q := range d.queuesOf(queue) {
		if m, ok := q.detail(id); ok {
			return m, nil
		}
	}
	return pubsub.MessageDetail{}, fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
}

// detail returns message id of q.
func (q *queue) detail(id string) (pubsub.MessageDetail, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, state := q.ready.find(id), pubsub.StatePending
	if i := q.scheduled.index(id); e == nil && i >= 0 {
		e, state = q.scheduled.items[i], pubsub.StateScheduled
	}
	if e == nil {
		for l := range q.leased {
			if l.id == id {
				e, state = l, pubsub.StateInFlight
				break
			}
		}
	}
	if e == nil {
		return pubsub.MessageDetail{}, false
	}
	m := pubsub.MessageDetail{
		ID: e.id, Queue: q.name, State: state, Payload: bytes.Clone(e.payload), Metadata: metadataMap(e.metadata),
		Priority: e.priority, Attempts: e.attempts, CreatedAt: e.createdAt(), AvailableAt: e.availableAt,
	}
	if f := e.failure; f != nil {
		m.FirstFailureAt, m.LastFailureAt, m.LastError = f.first, f.last, f.lastError
	}
	return m, true
}

// DeleteMessage removes every ready or scheduled copy of message id from
// queue (or every queue).
func (d *driver) DeleteMessage(_ context.Context, queue, id string) error {
	if err := d.check(); err != nil {
		return err
	}
	deleted, held := 0, 0
	for _, q := range d.queuesOf(queue) {
		n, h := q.remove(id)
		deleted += n
		held += h
	}
	switch {
	case deleted > 0:
		return nil
	case held > 0:
		return fmt.Errorf("message %s: %w: a consumer holds it", id, pubsub.ErrMessageInFlight)
	}
	return fmt.Errorf("message %s: %w", id, pubsub.ErrMessageNotFound)
}

// remove deletes the ready and scheduled messages with id from q, and
// returns how many it deleted and how many consumers hold.
func (q *queue) remove(id string) (deleted, held int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	deleted = q.ready.remove(id)
	for i := q.scheduled.index(id); i >= 0; i = q.scheduled.index(id) {
		q.scheduled.remove(i)
		deleted++
	}
	for l := range q.leased {
		if l.id == id {
			held++
		}
	}
	return deleted, held
}
