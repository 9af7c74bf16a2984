package router

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/middleware"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
)

// Meta is what a typed handler knows of a message besides its payload.
type Meta struct {
	// ID is the message's id: the same on every delivery of the message,
	// so it is the key of an idempotent handler (middleware.Inbox).
	ID string
	// Queue is the queue the message was delivered from
	// ("QUEUE@INSTANCE" on addressed and broadcast queues); empty for a
	// message that did not come from a backend.
	Queue string
	// Attempt is 1 on the first delivery, one more on each redelivery.
	Attempt int
	// Origin is the instance that published the message (OriginOf): a
	// reply goes to it with To(m.Origin).
	Origin string
	// Instance is the instance the message was delivered to on an
	// addressed or broadcast queue (InstanceOf); empty on a work queue.
	Instance string
	// Schema is the payload's contract and the version it was written at
	// (older than the handler's contract when an older payload was
	// accepted).
	Schema contracts.Schema
	// PublishedAt is when the message was published; zero if unknown.
	PublishedAt time.Time
	// Message is the message itself, with its metadata.
	Message *message.Message
}

// MetaOf returns msg's Meta, without Schema.
func MetaOf(msg *message.Message) Meta {
	m := Meta{ID: msg.UUID, Attempt: 1, Origin: OriginOf(msg), Message: msg}
	if d := pubsub.DeliveryOf(msg); d != nil {
		m.Queue, m.Attempt = d.Queue, d.Attempt
		_, m.Instance = pubsub.SplitInstanceQueue(d.Queue)
	}
	if ns, err := strconv.ParseInt(msg.Metadata.Get(telemetry.MetadataPublishedAt), 10, 64); err == nil {
		m.PublishedAt = time.Unix(0, ns)
	}
	return m
}

// Handle returns the Handler of a queue whose messages are Ts: each
// payload is decoded and validated as a T (contracts.Decode) and handed to
// fn with the message's context and Meta. Register it by handler name as
// any Handler:
//
//	Handlers: map[string]router.Handler{
//		topology.HandleProposalForConsensus: router.Handle(cc.vote), // func(ctx, contracts.Proposal, router.Meta) error
//	}
//
// A payload that does not decode, fails Validate, or carries a schema
// version newer than T's is dead-lettered at once (middleware.Permanent,
// never retried), with the error naming the queue and the field. What fn
// returns is the handler's result: nil acks, an error is retried.
func Handle[T contracts.Contract](fn func(ctx context.Context, v T, m Meta) error) Handler {
	return func(msg *message.Message) error {
		m := MetaOf(msg)
		v, err := contracts.Decode[T](m.Queue, msg.Payload, msg.Metadata)
		if err != nil {
			return middleware.Permanent(fmt.Errorf("message %s: %w", msg.UUID, err))
		}
		m.Schema = v.Schema()
		m.Schema.Version = v.PayloadVersion()
		return fn(msg.Context(), v, m)
	}
}

// Publish validates v, encodes it as JSON (contracts.Encode), and
// publishes it with p, with the metadata quantumflow_content_type and
// quantumflow_schema. A value that fails Validate, or a T that is not the
// contract registered for p's queue, is refused and nothing is published
// (errors.Is(err, contracts.ErrInvalid)). To answer a message, publish
// with To(m.Origin).
func Publish[T contracts.Contract](ctx context.Context, p *Publisher, v T, opts ...PublishOption) (string, error) {
	payload, s, err := contracts.Encode(p.Queue(), v)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if want, ok := contracts.Lookup(p.Queue()); ok && want.Name != s.Name {
		return "", fmt.Errorf("publish: %w", &contracts.Error{Queue: p.Queue(), Schema: want,
			Reason: fmt.Sprintf("a %s is not this queue's contract", s)})
	}
	return p.Publish(ctx, payload, append([]PublishOption{withSchema(s)}, opts...)...)
}

func withSchema(s contracts.Schema) PublishOption {
	return func(m *message.Message) { contracts.SetMetadata(m.Metadata, s) }
}
