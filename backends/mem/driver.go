package mem

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// SendBatch adds msgs to queue in one step: all of them or, on error,
// none. A message whose dedup key the queue holds within its window is
// not added: its UUID becomes the stored message's id.
func (d *driver) SendBatch(ctx context.Context, queue string, msgs []*message.Message) error {
	// Copy before taking any lock: the caller may reuse its messages once
	// Publish returns. The batch's entries, its small payloads and its
	// metadata pairs take one allocation each rather than one per
	// message: fewer allocations on the publish path, and no per-message
	// size-class rounding for what may wait in the queue for long. Each
	// block lives while any message of the batch does, as the entries'
	// array always did; a payload over pooledPayload gets its own
	// allocation, so that a message left waiting (a retry, a low
	// priority) pins at most a few KiB of its batch's payloads.
	smallBytes, pairs := 0, 0
	for _, msg := range msgs {
		if len(msg.Payload) <= pooledPayload {
			smallBytes += len(msg.Payload)
		}
		pairs += 2 * len(msg.Metadata)
	}
	small := make([]byte, 0, smallBytes)
	metadata := make([]string, 0, pairs)
	entries := make([]entry, len(msgs))
	explicit := make([]bool, len(msgs))
	for i, msg := range msgs {
		prio, has, _ := pubsub.PriorityOf(msg) // the engine checked it
		at, _, _ := pubsub.DeliverAtOf(msg)
		var payload []byte
		switch {
		case msg.Payload == nil:
		case len(msg.Payload) <= pooledPayload:
			from := len(small)
			small = append(small, msg.Payload...)
			// Capped, so that nothing appended to one payload can run
			// into the next.
			payload = small[from:len(small):len(small)]
		default:
			payload = bytes.Clone(msg.Payload)
		}
		from := len(metadata)
		metadata = appendMetadata(metadata, msg.Metadata)
		entries[i] = entry{
			id:          msg.UUID,
			payload:     payload,
			metadata:    metadata[from:len(metadata):len(metadata)],
			priority:    prio,
			availableAt: at,
		}
		explicit[i] = has
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	q := d.st.queue(queue)
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	stored, ready := 0, 0
	for i := range entries {
		e := &entries[i]
		if key := metadataOf(e.metadata, pubsub.MetadataDedupKey); key != "" {
			if id, dup := q.dedup.Lookup(key, now); dup {
				msgs[i].UUID = id
				continue
			}
			q.dedup.Add(key, e.id, now, q.spec.DedupWindow)
		}
		if !explicit[i] {
			e.priority = q.spec.Priority
		}
		q.seq++
		e.seq = q.seq
		e.created = now.UnixNano()
		stored++
		if e.availableAt.After(now) {
			q.scheduleLocked(e, e.availableAt)
			continue
		}
		e.availableAt = time.Time{}
		q.ready.push(e)
		ready++
	}
	q.count.published += int64(stored)
	q.wakeLocked(ready)
	return nil
}

// pooledPayload is the largest payload SendBatch copies into its batch's
// shared block.
const pooledPayload = 512

// MaxPayload is the mem backend's payload limit: the default of the
// other backends, so that what passes in tests passes in production.
func (d *driver) MaxPayload() int { return pubsub.DefaultMaxPayload }

// EnsureQueue creates the queue with the default settings unless it
// exists.
func (d *driver) EnsureQueue(_ context.Context, queue string) error {
	d.st.queue(queue)
	return nil
}

// ReceiveBatch takes up to max ready messages, waiting for one while none
// is ready.
func (d *driver) ReceiveBatch(ctx context.Context, queue string, max int) ([]*pubsub.Received, error) {
	q := d.st.queue(queue)
	w := &waiter{wake: make(chan struct{}, 1)}
	for {
		es := q.take(max, w)
		if len(es) > 0 {
			out := make([]*pubsub.Received, len(es))
			for i, e := range es {
				out[i] = &pubsub.Received{
					ID:             e.id,
					Payload:        bytes.Clone(e.payload),
					Metadata:       metadataMap(e.metadata),
					Priority:       e.priority,
					Attempt:        e.attempts,
					FirstFailureAt: e.firstFailure(),
					Seq:            int64(e.seq),
					AckID:          e,
				}
			}
			return out, nil
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			q.leave(w)
			return nil, ctx.Err()
		}
	}
}

// Settle carries out settlements, each in one step under its queue's lock.
func (d *driver) Settle(_ context.Context, queue string, ss []pubsub.Settlement) error {
	q := d.st.queue(queue)
	for _, s := range ss {
		if s.Msg.Lost() {
			continue
		}
		e := s.Msg.AckID.(*entry)
		switch s.Action {
		case pubsub.SettleAck:
			q.ack(e)
		case pubsub.SettleRetry:
			q.nack(e, s.Delay, s.Error)
		case pubsub.SettleDeadLetter:
			q.deadLetter(e, *s.DeadLetter, s.Error)
		case pubsub.SettleInterrupted:
			q.interrupted(e)
		case pubsub.SettleDefer:
			q.deferred(e, s.Delay)
		}
	}
	return nil
}

// GiveBack returns messages that reached no consumer, their delivery
// undone.
func (d *driver) GiveBack(_ context.Context, queue string, ms []*pubsub.Received) error {
	q := d.st.queue(queue)
	for _, m := range ms {
		q.giveBack(m.AckID.(*entry))
	}
	return nil
}

// Tuning: a receive is a few heap pops under a lock, so batches stay
// small and one receive at a time keeps up.
func (d *driver) Tuning() pubsub.Tuning {
	return pubsub.Tuning{MaxBatch: 64, ReceivesInFlight: 1, PrefetchHold: 200 * time.Millisecond}
}

// ErrorCode classifies the few errors this backend returns.
func (d *driver) ErrorCode(err error) pubsub.ErrorCode {
	switch {
	case errors.Is(err, pubsub.ErrQueueNotFound):
		return pubsub.CodeNotFound
	case errors.Is(err, pubsub.ErrClosed):
		return pubsub.CodeClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return pubsub.CodeCanceled
	}
	return pubsub.CodeUnknown
}
