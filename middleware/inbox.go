package middleware

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Inbox defaults.
const (
	DefaultInboxWindow = 10 * time.Minute
	DefaultInboxMaxIDs = 100_000
)

// InboxConfig configures an Inbox.
type InboxConfig struct {
	// Window is how long the id of a handled message is remembered: a
	// redelivery within it is acked without running the handler. Defaults
	// to 10 minutes; make it longer than the backend's redelivery delay
	// (the PostgreSQL lease, NATS ack_wait) plus the longest retry delay.
	Window time.Duration
	// MaxIDs bounds how many ids are remembered; past it the oldest is
	// forgotten before its window ends. Defaults to 100,000 (about 20 MB:
	// see Inbox).
	MaxIDs int
	// Key returns the id a message is remembered by. Defaults to its
	// queue and its id (msg.UUID), which every delivery of the message
	// shares. Return a business id (a proposal's id) to also drop
	// duplicates published under different message ids.
	Key func(*message.Message) string
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Inbox makes a handler effectively once on backends without a
// transaction to commit the handler's work with the ack (NATS, mem): it
// remembers the ids of the messages the handler finished and acks a
// redelivery of one without running the handler again. Add its Middleware
// outside the standard stack (router.Config.Middlewares), one Inbox per
// router.
//
// What it covers: a redelivery after the handler returned but before the
// backend took the ack (an ack lost, a lease or ack_wait that ran out, a
// shutdown between the two), and, with Key, a message published twice.
// Two deliveries of one message at once in the process run the handler
// once: the second waits for the first and is acked if it succeeded.
//
// Its limits, stated plainly:
//   - Memory: the ids live in this process's memory, at most MaxIDs of
//     them, about 200 bytes each (measured with UUID ids on a
//     30-character queue name: 19 MB for 100,000); past MaxIDs the oldest
//     are forgotten early, however recent.
//   - Window: an id is forgotten Window after its message was handled; a
//     redelivery later than that runs the handler again.
//   - Restarts: nothing survives the process. A message handled just
//     before a crash and redelivered after the restart runs again — the
//     most common duplicate of at-least-once delivery is not covered.
//   - Instances: each process has its own Inbox; on a work queue a
//     redelivery may go to another instance, which runs the handler.
//   - A handler error is not remembered (the retry runs the handler), nor
//     is a dead-lettered message (a retry from the dead-letter queue runs
//     it).
//
// So the handler's effects must still tolerate a rare repeat: make them
// idempotent by a business key, or, on PostgreSQL, commit them in the
// transaction that acks the message, which covers restarts too.
type Inbox struct {
	cfg InboxConfig

	mu      sync.Mutex
	done    map[string]time.Time     // id -> when its message was handled
	order   []inboxEntry             // done's ids, oldest first
	head    int                      // order[:head] are gone
	running map[string]chan struct{} // ids being handled, closed when done

	duplicates atomic.Int64
}

type inboxEntry struct {
	id string
	at time.Time
}

// NewInbox returns an Inbox with cfg's defaults filled in.
func NewInbox(cfg InboxConfig) *Inbox {
	if cfg.Window <= 0 {
		cfg.Window = DefaultInboxWindow
	}
	if cfg.MaxIDs <= 0 {
		cfg.MaxIDs = DefaultInboxMaxIDs
	}
	if cfg.Key == nil {
		cfg.Key = inboxKey
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Inbox{cfg: cfg, done: map[string]time.Time{}, running: map[string]chan struct{}{}}
}

func inboxKey(msg *message.Message) string {
	if d := pubsub.DeliveryOf(msg); d != nil {
		return d.Queue + " " + msg.UUID
	}
	return msg.UUID
}

// Len returns how many ids the Inbox remembers.
func (in *Inbox) Len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.done)
}

// Duplicates returns how many deliveries were acked without running the
// handler.
func (in *Inbox) Duplicates() int64 { return in.duplicates.Load() }

// Middleware is the Inbox as Watermill handler middleware.
func (in *Inbox) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := in.cfg.Key(msg)
		handled, err := in.claim(msg.Context(), id)
		if err != nil || handled {
			return nil, err
		}
		out, err := h(msg)
		in.finish(id, err == nil && !deadLettered(msg))
		return out, err
	}
}

// claim reports whether id was handled within the window; if not, it
// marks id running, after waiting for a delivery of it running already.
func (in *Inbox) claim(ctx context.Context, id string) (bool, error) {
	for {
		in.mu.Lock()
		if at, ok := in.done[id]; ok && in.cfg.Now().Sub(at) < in.cfg.Window {
			in.mu.Unlock()
			in.duplicates.Add(1)
			return true, nil
		}
		wait, busy := in.running[id]
		if !busy {
			in.running[id] = make(chan struct{})
			in.mu.Unlock()
			return false, nil
		}
		in.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// finish ends id's run, remembering it when its message was handled.
func (in *Inbox) finish(id string, handled bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	close(in.running[id])
	delete(in.running, id)
	if !handled {
		return
	}
	now := in.cfg.Now()
	in.done[id] = now
	in.order = append(in.order, inboxEntry{id, now})
	in.evict(now)
}

// evict forgets the ids older than the window and those past MaxIDs.
func (in *Inbox) evict(now time.Time) {
	for in.head < len(in.order) {
		e := in.order[in.head]
		if len(in.order)-in.head <= in.cfg.MaxIDs && now.Sub(e.at) < in.cfg.Window {
			break
		}
		// The id may have been handled again since (after its window):
		// only its newest entry counts.
		if in.done[e.id].Equal(e.at) {
			delete(in.done, e.id)
		}
		in.order[in.head] = inboxEntry{}
		in.head++
	}
	if in.head > len(in.order)/2 {
		in.order = append(in.order[:0], in.order[in.head:]...)
		in.head = 0
	}
}

func deadLettered(msg *message.Message) bool {
	d := pubsub.DeliveryOf(msg)
	return d != nil && d.Outcome().DeadLetter != nil
}
