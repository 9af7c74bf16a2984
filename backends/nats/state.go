package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deliveryState is what JetStream does not keep about a message that
// failed: when it first and last failed, its last error, when its delayed
// retry is due, and how many of its deliveries never reached a handler.
// It lives in the state stream, one subject per (queue, stream sequence),
// written before the nack it describes and removed once the message is
// settled for good. Messages that never fail never get one, so the happy
// path costs nothing.
type deliveryState struct {
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	LastFailureAt  time.Time `json:"last_failure_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// Waiting is true from a nack until the message is delivered again:
	// the message is then in the queue, not in a worker's hands.
	Waiting bool `json:"waiting,omitempty"`
	// RetryAt is when a waiting message becomes deliverable again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Deliveries is JetStream's delivery count when the state was written.
	Deliveries uint64 `json:"deliveries"`
	// Uncounted counts deliveries that never reached a handler (fetched by
	// a subscription that closed before handing the message out): they are
	// not attempts, so Delivery.Attempt is JetStream's count minus these.
	Uncounted uint64 `json:"uncounted,omitempty"`
	// PublishedAt is the message's time in its queue, for the age of the
	// oldest pending message.
	PublishedAt time.Time `json:"published_at,omitzero"`
}

// attempts returns how many deliveries of the message reached a handler,
// given JetStream's delivery count.
func (s deliveryState) attempts(numDelivered uint64) int {
	if s.Uncounted >= numDelivered {
		return 0
	}
	return int(numDelivered - s.Uncounted)
}

// stateStore reads and writes delivery state.
type stateStore struct {
	d *driver
}

func (s stateStore) stream(context.Context) (jetstream.Stream, error) {
	return s.d.stateStream, nil
}

// get returns the state of a queue's message, and whether there is one.
func (s stateStore) get(ctx context.Context, queue string, seq uint64) (deliveryState, bool, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return deliveryState{}, false, fmt.Errorf("delivery state: %w", err)
	}
	m, err := st.GetLastMsgForSubject(ctx, s.d.names.stateSubject(queue, seq))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return deliveryState{}, false, nil
	}
	if err != nil {
		return deliveryState{}, false, fmt.Errorf("delivery state of %s #%d: %w", queue, seq, err)
	}
	var ds deliveryState
	if err := json.Unmarshal(m.Data, &ds); err != nil {
		return deliveryState{}, false, fmt.Errorf("delivery state of %s #%d: %w", queue, seq, err)
	}
	return ds, true, nil
}

// put stores the state of a queue's message and returns once JetStream
// has it.
func (s stateStore) put(ctx context.Context, queue string, seq uint64, ds deliveryState) error {
	b, _ := json.Marshal(ds) // plain fields always marshal
	if _, err := s.d.js.Publish(ctx, s.d.names.stateSubject(queue, seq), b, jetstream.WithExpectStream(s.d.names.stateStream())); err != nil {
		return fmt.Errorf("delivery state of %s #%d: %w", queue, seq, err)
	}
	return nil
}

// putAsync stores the state of a queue's message; the future says when
// JetStream has it.
func (s stateStore) putAsync(queue string, seq uint64, ds deliveryState) (jetstream.PubAckFuture, error) {
	b, _ := json.Marshal(ds) // plain fields always marshal
	f, err := s.d.js.PublishAsync(s.d.names.stateSubject(queue, seq), b, jetstream.WithExpectStream(s.d.names.stateStream()))
	if err != nil {
		return nil, fmt.Errorf("delivery state of %s #%d: %w", queue, seq, err)
	}
	return f, nil
}

// remove deletes the state of a queue's message.
func (s stateStore) remove(ctx context.Context, queue string, seq uint64) error {
	st, err := s.stream(ctx)
	if err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSubject(s.d.names.stateSubject(queue, seq)))
	}
	if err != nil {
		return fmt.Errorf("delivery state of %s #%d: remove: %w", queue, seq, err)
	}
	return nil
}

// list returns the states of a queue's messages by stream sequence.
func (s stateStore) list(ctx context.Context, queue string) (map[uint64]deliveryState, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("delivery state: %w", err)
	}
	filter := s.d.names.stateQueueFilter(queue)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("delivery state of %s: %w", queue, err)
	}
	out := make(map[uint64]deliveryState, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		seq, ok := seqOfStateSubject(subject)
		if !ok {
			continue
		}
		ds, found, err := s.get(ctx, queue, seq)
		if err != nil {
			return nil, err
		}
		if found {
			out[seq] = ds
		}
	}
	return out, nil
}

// putBackCache remembers the delivery state this driver wrote for the
// messages it put back (pulled ahead, never handed out), so that when one
// comes back to this driver, as it usually does, reading the state costs
// no round trip. An entry is only used for the very next delivery of its
// message (JetStream's delivery count one higher than when it was
// written): a delivery elsewhere in between may have changed the state.
type putBackCache struct {
	mu sync.Mutex
	m  map[putBackKey]deliveryState
}

type putBackKey struct {
	queue string
	seq   uint64
}

// putBackCacheMax bounds the cache; entries of messages that went to
// another process are never taken, and the whole cache is dropped when
// full (it is only a shortcut).
const putBackCacheMax = 1 << 16

func (c *putBackCache) add(queue string, seq uint64, ds deliveryState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= putBackCacheMax {
		c.m = map[putBackKey]deliveryState{}
	}
	c.m[putBackKey{queue, seq}] = ds
}

// take returns and forgets the state written when the message was put
// back, if this delivery is the next one after that.
func (c *putBackCache) take(queue string, seq, numDelivered uint64) (deliveryState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := putBackKey{queue, seq}
	ds, ok := c.m[k]
	if !ok {
		return deliveryState{}, false
	}
	delete(c.m, k)
	if ds.Deliveries+1 != numDelivered {
		return deliveryState{}, false
	}
	return ds, true
}
