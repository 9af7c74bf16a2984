package mem

import (
	"bytes"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// publisher is a backend's Watermill publisher.
type publisher struct {
	d *driver
	// mu is held shared by every Publish in progress, so that Close waits
	// for them: a Publish that returned nil has its messages in the queue.
	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*publisher)(nil)

// Publish adds msgs to queue in one step: all of them or, on error, none.
func (p *publisher) Publish(queue string, msgs ...*message.Message) error {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return err
	}
	// Copy before taking any lock: the caller may reuse its messages once
	// Publish returns.
	entries := make([]entry, len(msgs))
	explicit := make([]bool, len(msgs))
	for i, msg := range msgs {
		prio, has, err := pubsub.PriorityOf(msg)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", queue, err)
		}
		entries[i] = entry{
			id:       msg.UUID,
			payload:  bytes.Clone(msg.Payload),
			metadata: maps.Clone(map[string]string(msg.Metadata)),
			priority: prio,
		}
		explicit[i] = has
	}

	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("publish to %s: %w", queue, pubsub.ErrClosed)
	}
	q := p.d.st.queue(queue)
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range entries {
		e := &entries[i]
		if !explicit[i] {
			e.priority = q.spec.Priority
		}
		q.seq++
		e.seq = q.seq
		e.created = now
		q.ready.push(e)
	}
	q.count.published += int64(len(entries))
	q.wakeLocked(len(entries))
	return nil
}

// Close makes later Publish calls fail with ErrClosed, after waiting for
// those in progress. It is idempotent.
func (p *publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}
