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
	Retry      bool
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

// AttachDelivery stores d in msg's context. Backends call it before handing
// msg out.
func AttachDelivery(msg *message.Message, d *Delivery) {
	msg.SetContext(context.WithValue(msg.Context(), deliveryKey{}, d))
}

// DeliveryOf returns the Delivery a backend attached to msg, or nil when the
// message did not come from a QuantumFlow backend.
func DeliveryOf(msg *message.Message) *Delivery {
	d, _ := msg.Context().Value(deliveryKey{}).(*Delivery)
	return d
}
