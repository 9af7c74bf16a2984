package pubsub

import (
	"context"
	"time"
)

// Priority is a message's or queue's delivery priority: higher first.
type Priority int

const (
	// PriorityNormal is the default priority.
	PriorityNormal Priority = 0
	// PriorityHigh is the priority of the seed's high-priority queues
	// (rollback_triggers_queue).
	PriorityHigh Priority = 10
)

// Settings of a queue that was used (published to or subscribed to)
// without being declared. A declared queue has exactly the settings of
// its QueueSpec: there, zero means zero.
const (
	DefaultMaxRetries = 3
	DefaultRetryDelay = time.Second
)

// QueueSpec declares a queue to a backend. Backends that need storage per
// queue (NATS streams, rows in quantum_flow_queues) create it; declaring an
// existing queue again updates its settings. Every field is taken as it
// is: MaxRetries 0 is the seed's "never retry", RetryDelay 0 retries at
// once. A queue used without a declaration gets DefaultQueueSpec.
type QueueSpec struct {
	// Name is the queue name, e.g. "proposals_for_consensus_queue".
	Name string
	// Priority is the default priority of messages published to the queue
	// without one of their own.
	Priority Priority
	// MaxRetries is how many times a failed message is retried before it
	// becomes a dead letter (the middleware enforces it; backends store
	// and list it).
	MaxRetries int
	// RetryDelay is the delay before the first retry (the middleware
	// doubles it for each further one).
	RetryDelay time.Duration
	// DedupWindow is how long a dedup key (MetadataDedupKey) is
	// remembered, from MinDedupWindow to MaxDedupWindow. Zero, and only
	// here, means DefaultDedupWindow: DeclareQueue fills it in before the
	// driver sees the spec.
	DedupWindow time.Duration
}

// DefaultQueueSpec is the spec of a queue used without a declaration:
// normal priority, DefaultMaxRetries, DefaultRetryDelay,
// DefaultDedupWindow.
func DefaultQueueSpec(name string) QueueSpec {
	return QueueSpec{Name: name, Priority: PriorityNormal, MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay, DedupWindow: DefaultDedupWindow}
}

// QueueInfo describes a known queue.
type QueueInfo struct {
	// Name is the queue's name (an instance queue's is QUEUE@INSTANCE).
	Name string `json:"name"`
	// Priority is the queue's priority (QueueSpec.Priority): that of
	// messages published without one of their own.
	Priority Priority `json:"priority"`
	// MaxRetries is the queue's QueueSpec.MaxRetries.
	MaxRetries int `json:"max_retries"`
	// RetryDelay is the queue's QueueSpec.RetryDelay (in nanoseconds in
	// JSON).
	RetryDelay time.Duration `json:"retry_delay_ns"`
	// DedupWindow is the queue's dedup window (QueueSpec.DedupWindow).
	DedupWindow time.Duration `json:"dedup_window_ns"`
	// CreatedAt is when the backend first stored the queue (its row, its
	// stream); zero when the backend does not know.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// QueueStats is a snapshot of one queue. Counts are exact at the time of
// the snapshot; what a consumer then receives matches them.
type QueueStats struct {
	// Queue is the queue's name.
	Queue string `json:"queue"`
	// Pending counts messages ready to be delivered now.
	Pending int64 `json:"pending"`
	// InFlight counts messages delivered and not yet acked or nacked.
	InFlight int64 `json:"in_flight"`
	// Scheduled counts messages waiting until a later time: for a
	// delayed retry, or published delayed or scheduled
	// (MetadataDeliverAt).
	Scheduled int64 `json:"scheduled"`
	// DeadLetters counts dead letters whose original queue is this one.
	DeadLetters int64 `json:"dead_letters"`
	// OldestPendingAge is the age of the oldest pending message; zero when
	// none is pending.
	OldestPendingAge time.Duration `json:"oldest_pending_age_ns"`
	// Counters holds backend-kept counters (published, acked, nacked,
	// dead-lettered, ...) and health figures (dead tuples, oldest open
	// transaction age in seconds, ...). Keys depend on the backend.
	Counters map[string]int64 `json:"counters,omitempty"`
	// Paused is true while the queue is paused (Backend.PauseQueue): its
	// consumers take none of its messages.
	Paused bool `json:"paused"`
}

// PendingMessage is a message waiting in a queue.
type PendingMessage struct {
	// ID is the message's id (Watermill's UUID).
	ID string `json:"id"`
	// Queue is the queue the message waits in.
	Queue string `json:"queue"`
	// CreatedAt is when the message was published.
	CreatedAt time.Time `json:"created_at"`
	// Attempts counts the deliveries so far: 0 for a message never
	// delivered; the next delivery's Delivery.Attempt is Attempts+1.
	Attempts int `json:"attempts"`
	// Priority is the message's priority: its own (MetadataPriority),
	// else the queue's.
	Priority Priority `json:"priority"`
	// Payload is the message's payload as published.
	Payload []byte `json:"payload"`
	// Metadata is the message's metadata as published; empty when it has
	// none.
	Metadata map[string]string `json:"metadata,omitempty"`
	// AvailableAt is when a message waiting for a retry, or published
	// delayed or scheduled, becomes deliverable; zero when it already is.
	AvailableAt time.Time `json:"available_at,omitzero"`
}

// DeadLetter is a message that failed max_retries retries (or failed
// permanently) and was moved out of its queue.
type DeadLetter struct {
	// ID is the id the message had in its queue.
	ID string `json:"id"`
	// Queue is the queue the message was dead-lettered from (an instance
	// queue's name is QUEUE@INSTANCE).
	Queue string `json:"queue"`
	// Payload is the message's payload as published.
	Payload []byte `json:"payload"`
	// Metadata is the message's metadata as published; empty when it had
	// none.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Error is why the message was dead-lettered: the handler's last
	// error, or the engine's reason (ReasonExpired, ReasonInstanceGone).
	Error string `json:"error"`
	// Attempts is the attempt number of the delivery that was
	// dead-lettered.
	Attempts int `json:"attempts"`
	// Handler is the name of the handler that failed the message (the
	// DeadLetterReason's); empty when no handler did, as for an expired
	// message.
	Handler string `json:"handler,omitempty"`
	// Service is the name of the service whose handler failed the
	// message; empty as Handler is.
	Service string `json:"service,omitempty"`
	// FirstFailureAt is when the message first failed.
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	// LastFailureAt is when it last failed: when it was dead-lettered.
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	// CreatedAt is when the message became a dead letter.
	CreatedAt time.Time `json:"created_at"`
}

// DeadLetterQuery selects dead letters. The zero value selects all of them.
type DeadLetterQuery struct {
	// Queue restricts to dead letters from this original queue.
	Queue string
	// IDs restricts to these dead-letter ids (which are the ids the
	// messages had in their queue).
	IDs []string
	// Limit caps how many are listed; 0 means the backend's default (100)
	// for listing and no cap for retry and purge.
	Limit int
}

// Admin is the seed's monitoring and dead-letter API. Every backend
// implements it with the same meaning.
type Admin interface {
	// Init creates or upgrades the backend's storage. It is idempotent and
	// safe to run from several processes at once.
	Init(ctx context.Context) error
	// DeclareQueue creates or updates a queue.
	DeclareQueue(ctx context.Context, spec QueueSpec) error
	// ListQueues lists known queues, ordered by name.
	ListQueues(ctx context.Context) ([]QueueInfo, error)
	// Stats returns a snapshot of one queue. A queue never declared,
	// published to or subscribed to is ErrQueueNotFound; a known empty
	// queue is all zeros.
	Stats(ctx context.Context, queue string) (QueueStats, error)
	// ListPending lists up to limit messages of a queue in delivery order
	// (priority first, then oldest); limit <= 0 means 100.
	ListPending(ctx context.Context, queue string, limit int) ([]PendingMessage, error)
	// ListDeadLetters lists dead letters, newest first.
	ListDeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error)
	// RetryDeadLetters moves the selected dead letters back onto their
	// queues with attempts reset, and returns how many moved.
	RetryDeadLetters(ctx context.Context, q DeadLetterQuery) (int, error)
	// PurgeDeadLetters deletes the selected dead letters and returns how
	// many were deleted.
	PurgeDeadLetters(ctx context.Context, q DeadLetterQuery) (int, error)
}
