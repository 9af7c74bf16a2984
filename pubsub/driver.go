package pubsub

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Driver is the contract a backend author implements; users never see it.
// The portable *Backend wraps a Driver and writes once, for every backend,
// what is the same everywhere: Watermill's Publisher and Subscriber,
// argument validation, queue-spec defaults, closed state, the prefetch
// buffer that feeds a queue's subscriptions (claiming ahead, giving back
// what waits too long), delivery contexts, settlement batching, lease
// extension, publish-context semantics and the error shape. A driver keeps
// only what is its own: SQL and its transactions, JetStream calls, a heap.
//
// The engine calls a driver from several goroutines at once, but never
// after Close. It calls ReceiveBatch for one queue at most
// Tuning().ReceivesInFlight times at once; every other method may be
// called concurrently for the same queue.
//
// Arguments are valid when they reach a driver: queue names pass
// ValidateQueueName, specs are complete (WithDefaults applied), limits are
// positive. Errors a driver returns are classified by ErrorCode; the
// engine wraps them with the operation, the queue and the sentinel of
// their code, so a driver need not (and a driver must never put a URL's
// password or token in an error).
type Driver interface {
	Admin

	// SendBatch stores msgs on queue, in order, and returns nil only once
	// every one of them is stored durably as the backend defines it. It
	// stores all or none where the backend can, and says in its package
	// doc where it cannot. It must honour ctx: a ctx already done stores
	// nothing. A message carries its priority in its metadata
	// (PriorityOf); without one, the queue's declared priority applies.
	//
	// A message with a dedup key (DedupKeyOf) whose key was stored on
	// queue within the queue's dedup window, by an earlier publish or an
	// earlier message of msgs, is not stored: SendBatch sets its UUID to
	// the stored message's id, so that the publisher learns it (empty when
	// the backend cannot know it any more; its package doc says when).
	// Concurrent publishes of one key store exactly one message, and every
	// other one learns its id. The window counts from the publish that
	// stored the key. Apart from that UUID, the driver must not keep or
	// change msgs after it returns.
	SendBatch(ctx context.Context, queue string, msgs []*message.Message) error

	// EnsureQueue makes queue known to the backend, with DefaultQueueSpec
	// unless it was declared, so that Stats and ListPending find it. The
	// engine calls it on Subscribe; SendBatch does the same itself for the
	// queues it publishes to.
	EnsureQueue(ctx context.Context, queue string) error

	// ReceiveBatch takes up to max ready messages of queue, in delivery
	// order (priority first, then oldest), leased to this backend until
	// they are settled or given back. Each one's Attempt counts this
	// delivery. When nothing is ready it waits, its own way (a
	// notification, a poll, a pull request), until something may be or ctx
	// is done, and may return an empty batch with a nil error after a
	// while. Messages it has taken must be returned even when ctx ends as
	// they arrive: the engine gives them back.
	ReceiveBatch(ctx context.Context, queue string, max int) ([]*Received, error)

	// Settle carries out settlements of messages this driver received.
	// It must not keep ss after it returns (the engine reuses it), and it
	// should not wait for I/O it can batch: the engine calls it from a
	// subscription's goroutine, which delivers nothing meanwhile.
	// It may return before the work is durable (the PostgreSQL backend
	// commits acks asynchronously by default), but what it accepted must
	// not be lost while the driver is open, and Close must finish it. A
	// settlement of a message whose lease was lost (Received.Lost) does
	// nothing.
	Settle(ctx context.Context, queue string, ss []Settlement) error

	// GiveBack returns received messages that never reached a consumer to
	// their queue, ready at once and in their order (as far as the backend
	// can: JetStream redelivers in the order of its naks, so the engine
	// receives no further ahead until what it gave back came back), with
	// their delivery undone: the attempt ReceiveBatch counted is not
	// counted. An error
	// means they come back only when their leases expire (their attempt
	// then counted); a driver that retries the give-back itself returns
	// nil.
	GiveBack(ctx context.Context, queue string, ms []*Received) error

	// Capabilities returns what the driver, as configured, can do.
	Capabilities() Capabilities

	// Tuning returns how the engine should drive ReceiveBatch.
	Tuning() Tuning

	// ErrorCode classifies an error the driver returned.
	ErrorCode(err error) ErrorCode

	// Close releases the driver's resources, after finishing the
	// settlements it accepted. The engine calls it once, after every
	// subscription ended and every buffered message was given back.
	Close() error
}

// LeaseExtender is implemented by drivers whose received messages are
// leased for a limited time (PostgreSQL's lease, JetStream's AckWait).
// The engine extends the lease of every message it holds, buffered or
// with a consumer, each LeaseInterval.
type LeaseExtender interface {
	// LeaseInterval is how often the engine extends leases; a third of the
	// lease is a good choice.
	LeaseInterval() time.Duration
	// ExtendLeases extends the leases of ms. A message whose lease was
	// found taken over (it expired and another consumer received the
	// message) is marked with MarkLost.
	ExtendLeases(ctx context.Context, queue string, ms []*Received) error
}

// Tuning says how the engine drives a driver's ReceiveBatch.
type Tuning struct {
	// MaxBatch caps the max of one ReceiveBatch. The engine asks for one
	// message while the subscriptions consume slowly and doubles the
	// batch, up to MaxBatch, while they empty each batch quickly.
	MaxBatch int
	// ReceivesInFlight is how many ReceiveBatch calls of one queue may
	// run at once (at least 1): more keep fast subscriptions fed while a
	// receive is on its way. The engine hands out their messages in the
	// order it started them, so a backend that shares messages out among
	// concurrent requests in turn (JetStream's pull requests) needs 1.
	ReceivesInFlight int
	// ReceiveInOrder makes the engine start a queue's next ReceiveBatch
	// only once the one before holds its messages: it called Holding with
	// its context, or returned. The engine hands out receives' messages in
	// the order it started them; a driver whose concurrent receives could
	// take messages in another order (PostgreSQL: the later call may reach
	// the claim first) sets it, and a receive that waits on an empty queue
	// then holds up no other.
	ReceiveInOrder bool
	// PrefetchHold is how long a received message may wait in the buffer
	// for a subscription before the engine gives it back, so that a
	// backend whose consumers are slow does not hoard messages other
	// processes could handle.
	PrefetchHold time.Duration
}

// Received is a message a driver received for the engine.
type Received struct {
	// ID is the message's id (Watermill's UUID field).
	ID string
	// Payload is the message's payload as published. The engine hands it
	// and Metadata to the consumer as they are: the driver must not reuse
	// them.
	Payload []byte
	// Metadata is the message's metadata as published (the same rule as
	// for Payload).
	Metadata message.Metadata
	// Priority orders messages in the buffer as ReceiveBatch ordered them.
	Priority Priority
	// Attempt is the attempt number of this delivery: 1 on the first.
	Attempt int
	// FirstFailureAt is when the message first failed; zero if never.
	FirstFailureAt time.Time
	// Seq orders messages of equal priority, oldest first; messages with
	// equal Seq keep the order ReceiveBatch returned them in, so drivers
	// that return one batch in order may leave it zero.
	Seq int64
	// AckID is the driver's own handle on the delivery.
	AckID any
	// OutOfOrder is set by a driver whose backend may have delivered this
	// message out of queue order, so that messages before it may still be
	// waiting: JetStream redelivers in the order of its naks. Any other
	// message was taken in queue order (every one before it was taken
	// already), and the engine stops waiting for the messages it gave
	// back that go before it (see receiver.givenBack).
	OutOfOrder bool

	receivedAt time.Time
	lost       atomic.Bool
}

// MarkLost records that the message's lease was taken over: the engine
// drops it from its buffer, and a settlement of it does nothing.
func (r *Received) MarkLost() { r.lost.Store(true) }

// Lost reports whether MarkLost was called.
func (r *Received) Lost() bool { return r.lost.Load() }

// SettleAction is what a settlement does with a message.
type SettleAction uint8

const (
	// SettleAck removes the message: it was handled.
	SettleAck SettleAction = iota
	// SettleRetry makes the message ready again after Settlement.Delay, its
	// failure recorded (Error; FirstFailureAt set if unset). Its next
	// delivery is the next attempt.
	SettleRetry
	// SettleDeadLetter moves the message to the dead-letter queue with
	// Settlement.DeadLetter.
	SettleDeadLetter
	// SettleInterrupted makes the message ready again at once: it reached a
	// consumer, which had not settled it when its subscription ended. Its
	// attempt counts; no failure is recorded.
	SettleInterrupted
	// SettleDefer makes the message ready again after Settlement.Delay
	// with its delivery undone, as GiveBack does: it was received before
	// it was due (MetadataDeliverAt), on a backend that stores a delayed
	// message by delivering it and deferring it then (NATS), or whose
	// clock is behind the engine's. No failure is recorded.
	SettleDefer
)

// String returns the action's name.
func (a SettleAction) String() string {
	switch a {
	case SettleAck:
		return "ack"
	case SettleRetry:
		return "retry"
	case SettleDeadLetter:
		return "dead_letter"
	case SettleInterrupted:
		return "interrupted"
	case SettleDefer:
		return "defer"
	}
	return "unknown"
}

// Settlement is how one received message is settled.
type Settlement struct {
	// Msg is the received message to settle, as the driver returned it
	// from ReceiveBatch (its AckID included).
	Msg *Received
	// Action is what to do with the message.
	Action SettleAction
	// Delay is how long a retried message waits before it is ready again.
	Delay time.Duration
	// Error is the handler's last error, for SettleRetry and SettleDeadLetter.
	Error string
	// DeadLetter says why and where the message failed, for SettleDeadLetter.
	DeadLetter *DeadLetterReason
}

// ErrorCode classifies driver errors, so that the same failure has the
// same error shape on every backend.
type ErrorCode uint8

const (
	// CodeUnknown is an error the driver cannot classify.
	CodeUnknown ErrorCode = iota
	// CodeNotFound means the queue (or message) does not exist.
	CodeNotFound
	// CodeClosed means the driver or its connection is closed for good.
	CodeClosed
	// CodeNotInitialized means the backend's storage was never created.
	CodeNotInitialized
	// CodeUnavailable means a transient condition (connection lost,
	// cluster leader election, server restarting); retrying may succeed.
	CodeUnavailable
	// CodeInvalidArgument means the backend refused an argument.
	CodeInvalidArgument
	// CodeCanceled means the context ended.
	CodeCanceled
)

// sentinel returns the exported error of a code, or nil.
func (c ErrorCode) sentinel() error {
	switch c {
	case CodeNotFound:
		return ErrQueueNotFound
	case CodeClosed:
		return ErrClosed
	case CodeNotInitialized:
		return ErrNotInitialized
	case CodeUnavailable:
		return ErrUnavailable
	case CodeInvalidArgument:
		return ErrInvalidArgument
	}
	return nil
}

type holdingKey struct{}

// Holding tells the engine that the ReceiveBatch running with ctx holds
// its messages, so that with Tuning.ReceiveInOrder the next receive of its
// queue may start. Calling it more than once, or with another context,
// does nothing.
func Holding(ctx context.Context) {
	if f, ok := ctx.Value(holdingKey{}).(func()); ok {
		f()
	}
}
