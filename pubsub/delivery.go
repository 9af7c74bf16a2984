package pubsub

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Delivery is the backend's record of one delivery of a message. The
// backend attaches it to the message's context before handing the message
// out; middleware reads the attempt number from it and records how the
// message should be settled (retry after a delay, or dead-letter), and the
// backend carries that out on Ack or Nack.
//
// Watermill's Ack/Nack carry no arguments, so this is the side channel
// through which a nack gets its delay and an ack becomes a move to the
// dead-letter queue.
type Delivery struct {
	// Queue is the queue the message was delivered from.
	Queue string
	// Attempt is 1 on first delivery and grows by one per redelivery. On
	// durable backends it survives restarts.
	Attempt int
	// FirstFailureAt is when the message first failed; zero if it never
	// did before this delivery.
	FirstFailureAt time.Time

	mu         sync.Mutex
	retrySet   bool
	retryDelay time.Duration
	lastError  string
	deadLetter *DeadLetterReason

	// received is the driver's record of the delivery, for drivers'
	// own extensions (ReceivedOf).
	received *Received
}

// DeadLetterReason says why and where a message failed.
type DeadLetterReason struct {
	// Error is the last handler error.
	Error string
	// Handler is the name of the handler that failed.
	Handler string
	// Service is the name of the service whose handler failed.
	Service string
}

// Outcome is what middleware asked the backend to do with a delivery.
type Outcome struct {
	// Retry is true when a retry was scheduled: on Nack the message comes
	// back after RetryDelay.
	Retry bool
	// RetryDelay is the delay RetryAfter asked for, never negative; zero
	// when Retry is false (or when it asked to retry at once).
	RetryDelay time.Duration
	// LastError is the error that caused the retry or dead letter.
	LastError string
	// DeadLetter is non-nil when the message must move to the dead-letter
	// queue: on Ack (or Nack) the backend moves it instead of deleting or
	// redelivering it.
	DeadLetter *DeadLetterReason
}

// RetryAfter asks for the message to be redelivered no sooner than delay
// after it is nacked, and records cause as its last error.
func (d *Delivery) RetryAfter(delay time.Duration, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retrySet = true
	d.retryDelay = max(delay, 0)
	if cause != nil {
		d.lastError = cause.Error()
	}
}

// MarkDeadLetter asks for the message to be moved to the dead-letter queue
// when it is settled, whether acked or nacked.
func (d *Delivery) MarkDeadLetter(reason DeadLetterReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadLetter = &reason
	d.lastError = reason.Error
}

// Outcome returns what was asked for so far.
func (d *Delivery) Outcome() Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Outcome{Retry: d.retrySet, RetryDelay: d.retryDelay, LastError: d.lastError, DeadLetter: d.deadLetter}
}

type deliveryKey struct{}

// AttachDelivery stores d in msg's context, keeping the context msg has.
// The built-in backends give each delivered message a DeliveryContext
// instead, which carries d too; AttachDelivery serves a message made by
// hand (tests, a backend with a context of its own).
func AttachDelivery(msg *message.Message, d *Delivery) {
	msg.SetContext(context.WithValue(msg.Context(), deliveryKey{}, d))
}

// ReceivedOf returns the driver's record of msg's delivery (its AckID is
// the driver's handle on it), or nil when msg was not delivered by a
// QuantumFlow backend. Drivers' own extensions use it (the PostgreSQL
// backend's AckTx acknowledges a message inside the handler's
// transaction); it is not for handlers.
func ReceivedOf(msg *message.Message) *Received {
	if d := DeliveryOf(msg); d != nil {
		return d.received
	}
	return nil
}

// DeliveryOf returns the Delivery a backend attached to msg, or nil when the
// message did not come from a QuantumFlow backend.
func DeliveryOf(msg *message.Message) *Delivery {
	d, _ := msg.Context().Value(deliveryKey{}).(*Delivery)
	return d
}

// DeliveryContext is the context of one delivered message: it carries its
// Delivery (DeliveryOf finds it) and the values and deadline of the
// subscription's context, and it is done once End is called.
//
// It replaces context.WithCancel plus context.WithValue per message, which
// cost three allocations and a registration with the parent's lock, which
// every subscription of a queue shares: a third of a delivery's CPU at
// 100k messages/s. It does not watch its parent; the backend calls End when
// the message is settled and when the subscription ends while the message
// is out (its delivery loop watches the subscription's context anyway).
// Contexts derived from it (the router's timeout) register with it through
// AfterFunc, as they would with a cancelable context, and are canceled by
// End.
type DeliveryContext struct {
	parent context.Context
	d      *Delivery
	done   chan struct{}

	mu    sync.Mutex
	ended bool
	after map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

// NewDeliveryContext returns the context of a message delivered with d,
// derived from parent (the subscription's context). The caller must call
// End.
func NewDeliveryContext(parent context.Context, d *Delivery) *DeliveryContext {
	return &DeliveryContext{parent: parent, d: d, done: make(chan struct{})}
}

// End ends the delivery: the context is done and derived contexts are
// canceled. Later calls do nothing.
func (c *DeliveryContext) End() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	close(c.done)
	after := c.after
	c.after = nil
	c.mu.Unlock()
	for a := range after {
		go a.f()
	}
}

// Deadline returns the parent's deadline.
func (c *DeliveryContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Done is closed by End.
func (c *DeliveryContext) Done() <-chan struct{} { return c.done }

// Err is nil until End; then the parent's error if it has ended, else
// context.Canceled.
func (c *DeliveryContext) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	return context.Canceled
}

// Value returns the Delivery for DeliveryOf, and the parent's values.
func (c *DeliveryContext) Value(key any) any {
	if key == (deliveryKey{}) {
		return c.d
	}
	return c.parent.Value(key)
}

// AfterFunc runs f in its own goroutine after End, or at once if End was
// called. stop unregisters f; it returns false when f was already started.
// Package context uses it (its afterFuncer interface) to cancel contexts
// derived from this one without a goroutine each.
func (c *DeliveryContext) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.after == nil {
		c.after = map[*afterFunc]struct{}{}
	}
	c.after[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.after[a]; !ok {
			return false
		}
		delete(c.after, a)
		return true
	}
}
