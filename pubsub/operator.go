package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// QueuePauser is implemented by drivers that store which queues are
// paused, durably and shared by every process on the same storage
// (PostgreSQL: the table quantum_flow_paused_queues; NATS: keys of the
// registry bucket; mem: the storage's map). The engine reads it every
// PausePoll while it receives, so that a pause reaches every process
// within a second.
type QueuePauser interface {
	// SetQueuePaused records queue as paused, or as not paused.
	SetQueuePaused(ctx context.Context, queue string, paused bool) error
	// PausedQueues returns the paused queues, in any order, as this
	// process knows them: a change made by another process may show a
	// moment later (NATS reads a watch of the registry), well within
	// PausePoll.
	PausedQueues(ctx context.Context) ([]string, error)
}

// MessageStore is implemented by drivers that find and remove one message
// of a queue by its id (operators' message detail and removal).
type MessageStore interface {
	// GetMessage returns the message id waiting in or held from queue, or,
	// with queue "", from any queue (the first found: broadcast copies
	// share their message's id). A message it does not hold is an error
	// wrapping ErrMessageNotFound. It does not look at dead letters.
	GetMessage(ctx context.Context, queue, id string) (MessageDetail, error)
	// DeleteMessage removes the message id waiting in queue (with queue
	// "": every waiting copy of it), ready or scheduled. One that a
	// consumer holds is an error wrapping ErrMessageInFlight, one it does
	// not hold an error wrapping ErrMessageNotFound; neither changes
	// anything.
	DeleteMessage(ctx context.Context, queue, id string) error
}

// MessageState is where a message is.
type MessageState string

// A message's states, as GetMessage reports them.
const (
	// StatePending: ready, waiting for a consumer.
	StatePending MessageState = "pending"
	// StateScheduled: waiting until AvailableAt (delayed, scheduled or
	// waiting for a retry).
	StateScheduled MessageState = "scheduled"
	// StateInFlight: a consumer holds it.
	StateInFlight MessageState = "in_flight"
	// StateDeadLetter: among the dead letters.
	StateDeadLetter MessageState = "dead_letter"
)

// MessageDetail is one message as an operator sees it.
type MessageDetail struct {
	// ID is the message's id.
	ID string `json:"id"`
	// Queue is the queue the message is in (an instance queue's name is
	// QUEUE@INSTANCE), or, for a dead letter, the queue it was
	// dead-lettered from.
	Queue string `json:"queue"`
	// State is where the message is.
	State MessageState `json:"state"`
	// Payload is the message's payload as published.
	Payload []byte `json:"payload"`
	// Metadata is the message's metadata as published; empty when it has
	// none.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Priority is the message's priority: its own (MetadataPriority),
	// else the queue's; zero for a dead letter.
	Priority Priority `json:"priority"`
	// Attempts counts the deliveries that reached a consumer so far.
	Attempts int `json:"attempts"`
	// LastError is the error of the last failed attempt (for a dead
	// letter, why it was dead-lettered); empty when none failed.
	LastError string `json:"last_error,omitempty"`
	// CreatedAt is when the message was published; for a dead letter,
	// when it became one.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// AvailableAt is when a scheduled message becomes deliverable.
	AvailableAt time.Time `json:"available_at,omitzero"`
	// FirstFailureAt is when the message first failed; zero if it never
	// did.
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	// LastFailureAt is when the message last failed; zero if it never
	// did.
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
}

// PausePoll is how often a process that receives re-reads which queues
// are paused.
const PausePoll = 500 * time.Millisecond

// pauses is the engine's copy of which queues are paused.
type pauses struct {
	mu     sync.Mutex
	set    map[string]bool
	readAt time.Time
	stop   chan struct{}
	wg     sync.WaitGroup
}

// paused reports whether queue, or the queue an instance queue belongs
// to, is paused.
func (p *pauses) paused(queue string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	base, _ := SplitInstanceQueue(queue)
	return p.set[queue] || p.set[base]
}

// startPauses starts the poll of the driver's paused queues, if it keeps
// them.
func (e *engine) startPauses() {
	e.pauses.stop = make(chan struct{})
	qp, ok := e.d.(QueuePauser)
	if !ok {
		return
	}
	e.pauses.wg.Add(1)
	go func() {
		defer e.pauses.wg.Done()
		t := time.NewTicker(PausePoll)
		defer t.Stop()
		for {
			select {
			case <-e.pauses.stop:
				return
			case <-t.C:
			}
			e.mu.Lock()
			receiving := len(e.receivers) > 0
			e.mu.Unlock()
			if receiving {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				e.refreshPauses(ctx, qp)
				cancel()
			}
		}
	}()
}

// stopPauses ends the poll.
func (e *engine) stopPauses() {
	close(e.pauses.stop)
	e.pauses.wg.Wait()
}

// refreshPauses reads the paused queues and halts or resumes the
// receivers accordingly. On error the last known state stays.
func (e *engine) refreshPauses(ctx context.Context, qp QueuePauser) {
	qs, err := qp.PausedQueues(ctx)
	if err != nil {
		e.log.Warn("quantumflow: reading paused queues failed", slog.Any("error", e.wrap("read paused queues", "", err)))
		return
	}
	set := make(map[string]bool, len(qs))
	for _, q := range qs {
		set[q] = true
	}
	e.pauses.mu.Lock()
	e.pauses.set, e.pauses.readAt = set, time.Now()
	e.pauses.mu.Unlock()
	e.applyPauses()
}

// refreshPausesIfOld reads the paused queues unless they were read within
// PausePoll: a queue's first subscription must not start receiving from a
// paused queue on a state read long ago.
func (e *engine) refreshPausesIfOld(ctx context.Context) {
	qp, ok := e.d.(QueuePauser)
	if !ok {
		return
	}
	e.pauses.mu.Lock()
	fresh := time.Since(e.pauses.readAt) < PausePoll
	e.pauses.mu.Unlock()
	if !fresh {
		// Bounded: a backend that does not answer must not hold up a
		// subscription; the poll reads again within PausePoll.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		e.refreshPauses(ctx, qp)
	}
}

// applyPauses halts the receivers of paused queues and resumes the others.
func (e *engine) applyPauses() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for q, r := range e.receivers {
		r.setHalted(e.pauses.paused(q))
	}
}

// pauser returns the driver's QueuePauser.
func (b *Backend) pauser(op, queue string) (QueuePauser, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if b.engine.isClosed() {
		return nil, fmt.Errorf("%s queue %s: %w", op, queue, ErrClosed)
	}
	qp, ok := b.engine.d.(QueuePauser)
	if !ok {
		return nil, fmt.Errorf("%s queue %s: %w: pause", op, queue, ErrUnsupported)
	}
	return qp, nil
}

// PauseQueue pauses queue, durably and for every process on the backend:
// within PausePoll their subscriptions stop taking its messages (and of
// its instances' queues), those a consumer holds finish, what was
// received ahead goes back, and publishing goes on. A queue the backend
// does not know is ErrQueueNotFound.
func (b *Backend) PauseQueue(ctx context.Context, queue string) error {
	return b.setPaused(ctx, "pause", queue, true)
}

// ResumeQueue resumes a paused queue: within PausePoll every process's
// subscriptions take its messages again. Resuming a queue not paused does
// nothing.
func (b *Backend) ResumeQueue(ctx context.Context, queue string) error {
	return b.setPaused(ctx, "resume", queue, false)
}

func (b *Backend) setPaused(ctx context.Context, op, queue string, paused bool) error {
	qp, err := b.pauser(op, queue)
	if err != nil {
		return err
	}
	qs, err := b.engine.d.ListQueues(ctx)
	if err != nil {
		return b.engine.wrap(op, queue, err)
	}
	if !slices.ContainsFunc(qs, func(q QueueInfo) bool { return q.Name == queue }) {
		return fmt.Errorf("%s queue %s: %w", op, queue, ErrQueueNotFound)
	}
	if err := qp.SetQueuePaused(ctx, queue, paused); err != nil {
		return b.engine.wrap(op, queue, err)
	}
	// This process at once; the others at their next poll.
	b.engine.refreshPauses(ctx, qp)
	return nil
}

// PausedQueues returns the paused queues, sorted. A backend that cannot
// pause has none.
func (b *Backend) PausedQueues(ctx context.Context) ([]string, error) {
	if b.engine.isClosed() {
		return nil, fmt.Errorf("list paused queues: %w", ErrClosed)
	}
	qp, ok := b.engine.d.(QueuePauser)
	if !ok {
		return nil, nil
	}
	qs, err := qp.PausedQueues(ctx)
	if err != nil {
		return nil, b.engine.wrap("list paused queues", "", err)
	}
	slices.Sort(qs)
	return qs, nil
}

// messageStore returns the driver's MessageStore.
func (b *Backend) messageStore(op, queue, id string) (MessageStore, error) {
	if queue != "" {
		if err := ValidateQueueName(queue); err != nil {
			return nil, err
		}
	}
	if err := ValidateMessageID(id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if b.engine.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	ms, ok := b.engine.d.(MessageStore)
	if !ok {
		return nil, fmt.Errorf("%s: %w: message lookup", op, ErrUnsupported)
	}
	return ms, nil
}

// GetMessage returns message id: waiting in or held from queue (any
// queue when queue is ""), or else among the dead letters (from queue,
// when given). An id found nowhere is an error wrapping
// ErrMessageNotFound.
func (b *Backend) GetMessage(ctx context.Context, queue, id string) (MessageDetail, error) {
	op := "show message " + id
	st, err := b.messageStore(op, queue, id)
	if err != nil {
		return MessageDetail{}, err
	}
	var m MessageDetail
	err = b.engine.giveBackBuffered(ctx, queue, func() (err error) {
		m, err = st.GetMessage(ctx, queue, id)
		return err
	})
	if err == nil || !errors.Is(err, ErrMessageNotFound) {
		return m, b.wrapMessageErr(op, err)
	}
	dls, err := b.ListDeadLetters(ctx, DeadLetterQuery{Queue: queue, IDs: []string{id}, Limit: 1})
	if err != nil {
		return MessageDetail{}, err
	}
	if len(dls) == 0 {
		return MessageDetail{}, fmt.Errorf("%s: %w", op, ErrMessageNotFound)
	}
	dl := dls[0]
	return MessageDetail{ID: dl.ID, Queue: dl.Queue, State: StateDeadLetter, Payload: dl.Payload, Metadata: dl.Metadata,
		Attempts: dl.Attempts, LastError: dl.Error, CreatedAt: dl.CreatedAt, FirstFailureAt: dl.FirstFailureAt, LastFailureAt: dl.LastFailureAt}, nil
}

// DeleteMessage removes message id, ready or scheduled, from queue (with
// queue "": every queue holding it). One a consumer holds is an error
// wrapping ErrMessageInFlight, one not waiting in a queue (never
// published, acknowledged, or a dead letter: purge those) an error
// wrapping ErrMessageNotFound; neither changes anything.
func (b *Backend) DeleteMessage(ctx context.Context, queue, id string) error {
	op := "delete message " + id
	st, err := b.messageStore(op, queue, id)
	if err != nil {
		return err
	}
	err = b.engine.giveBackBuffered(ctx, queue, func() error { return st.DeleteMessage(ctx, queue, id) })
	return b.wrapMessageErr(op, err)
}

// wrapMessageErr shapes a MessageStore error: its own sentinels as they
// are, the others classified by the driver.
func (b *Backend) wrapMessageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrMessageNotFound) || errors.Is(err, ErrMessageInFlight) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return b.engine.wrap(op, "", err)
}
