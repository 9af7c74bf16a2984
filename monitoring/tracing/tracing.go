package tracing

import (
	"context"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumflow/quantumflow/pubsub"
)

// ScopeName is the instrumentation scope of QuantumFlow's spans.
const ScopeName = "github.com/quantumflow/quantumflow/monitoring/tracing"

// MessagingSystem is the messaging.system attribute of QuantumFlow spans.
const MessagingSystem = "quantumflow"

// Attribute keys QuantumFlow adds to the messaging conventions.
const (
	// AttrBackend is the backend's URL scheme (mem, postgres, nats).
	AttrBackend = attribute.Key("quantumflow.backend")
	// AttrHandler is the handler name, e.g. handle_proposal_for_consensus.
	AttrHandler = attribute.Key("quantumflow.handler")
	// AttrAttempt is the delivery attempt, 1 on first delivery.
	AttrAttempt = attribute.Key("quantumflow.attempt")
	// AttrRetryDelay is the delay of a scheduled retry, in milliseconds.
	AttrRetryDelay = attribute.Key("quantumflow.retry.delay_ms")
	// AttrError is the error recorded with a retry or dead letter.
	AttrError = attribute.Key("quantumflow.error")
	// AttrInstance is the instance a copy of an addressed or broadcast
	// message is for.
	AttrInstance = attribute.Key("quantumflow.instance")
)

// Span event names.
const (
	// EventRetryScheduled marks a handler attempt that failed and was
	// scheduled for redelivery.
	EventRetryScheduled = "quantumflow.retry_scheduled"
	// EventDeadLettered marks a message moved to the dead-letter queue.
	EventDeadLettered = "quantumflow.dead_lettered"
)

// Options configure the publisher decorator and the middleware. The zero
// value works: the global TracerProvider and W3C propagation.
type Options struct {
	// TracerProvider makes the spans. Defaults to otel.GetTracerProvider(),
	// which records nothing unless the application installed a provider.
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the trace context in message metadata.
	// Defaults to W3C Trace Context plus W3C Baggage. (Not the global
	// propagator: OpenTelemetry's global default propagates nothing, and
	// the metadata format is part of the wire contract between services.)
	Propagator propagation.TextMapPropagator
	// Service is the name of the service (singularity, centralcloud);
	// consumer spans carry it as messaging.consumer.group.name.
	Service string
	// Backend is the backend's URL scheme, recorded as quantumflow.backend.
	Backend string
}

func (o Options) tracer() trace.Tracer {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

func (o Options) propagator() propagation.TextMapPropagator {
	if o.Propagator != nil {
		return o.Propagator
	}
	return defaultPropagator
}

var defaultPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// metadataCarrier adapts Watermill metadata to a TextMapCarrier.
type metadataCarrier message.Metadata

func (c metadataCarrier) Get(key string) string { return c[key] }
func (c metadataCarrier) Set(key, value string) { c[key] = value }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into msg's metadata with the
// default propagator (W3C Trace Context and Baggage).
func Inject(ctx context.Context, msg *message.Message) { Options{}.inject(ctx, msg) }

// Extract returns ctx extended with the trace context found in msg's
// metadata (the remote parent of the span that handles msg).
func Extract(ctx context.Context, msg *message.Message) context.Context {
	return Options{}.extract(ctx, msg)
}

func (o Options) inject(ctx context.Context, msg *message.Message) {
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	o.propagator().Inject(ctx, metadataCarrier(msg.Metadata))
}

func (o Options) extract(ctx context.Context, msg *message.Message) context.Context {
	if msg.Metadata == nil {
		return ctx
	}
	return o.propagator().Extract(ctx, metadataCarrier(msg.Metadata))
}

// common returns the attributes of every span about queue (an instance's
// queue is named by its queue, with the instance an attribute of its own)
// and the queue's name for the span's.
func (o Options) common(name string) ([]attribute.KeyValue, string) {
	queue, instance := pubsub.SplitInstanceQueue(name)
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(MessagingSystem),
		semconv.MessagingDestinationName(queue),
	}
	if instance != "" {
		attrs = append(attrs, AttrInstance.String(instance))
	}
	if o.Backend != "" {
		attrs = append(attrs, AttrBackend.String(o.Backend))
	}
	return attrs, queue
}

// StartPublish starts a producer span for publishing msg to queue, as a
// child of the span in ctx (or, when ctx has none, of the trace context
// already in msg's metadata), writes the new span's context into msg's
// metadata and sets msg's context to the returned one. The caller ends
// the span after the publish, recording its error:
//
//	ctx, span := opts.StartPublish(ctx, queue, msg)
//	err := publisher.Publish(queue, msg)
//	tracing.End(span, err)
func (o Options) StartPublish(ctx context.Context, queue string, msg *message.Message) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// A message re-published without a live span (a forwarded message,
		// a tool re-sending one) keeps the trace it already belongs to.
		ctx = o.extract(ctx, msg)
	}
	attrs, queue := o.common(queue)
	attrs = append(attrs,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingMessageID(msg.UUID),
		semconv.MessagingMessageBodySize(len(msg.Payload)),
	)
	ctx, span := o.tracer().Start(ctx, "send "+queue,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrs...),
	)
	o.inject(ctx, msg)
	msg.SetContext(ctx)
	return ctx, span
}

// StartPublish is Options{}.StartPublish: the global TracerProvider.
func StartPublish(ctx context.Context, queue string, msg *message.Message) (context.Context, trace.Span) {
	return Options{}.StartPublish(ctx, queue, msg)
}

// End records err (if any) on span and ends it.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	}
	span.End()
}

// WrapPublisher returns a publisher that traces every message published
// through pub: each message gets a producer span, child of the span in its
// context (msg.Context()), and that span's context in its metadata.
func WrapPublisher(pub message.Publisher, opts Options) message.Publisher {
	return &publisher{pub: pub, opts: opts}
}

type publisher struct {
	pub  message.Publisher
	opts Options
}

// Publish implements message.Publisher.
func (p *publisher) Publish(queue string, msgs ...*message.Message) error {
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		_, spans[i] = p.opts.StartPublish(msg.Context(), queue, msg)
	}
	err := p.pub.Publish(queue, msgs...)
	for _, s := range spans {
		End(s, err)
	}
	return err
}

// Close implements message.Publisher.
func (p *publisher) Close() error { return p.pub.Close() }

// Middleware returns a Watermill HandlerMiddleware that runs every handler
// attempt in a consumer span ("process QUEUE"), a child of the trace
// context in the message's metadata. The handler's msg.Context() carries
// the span, so messages published from it with that context, and the
// messages it returns, continue the trace.
//
// Put it outermost (before telemetry, poison and retry): the span then
// covers the whole attempt and sees what the inner middleware decided,
// recorded from the message's pubsub.Delivery: a scheduled retry is an
// event with its delay, a dead letter an event and an error status.
func Middleware(opts Options) message.HandlerMiddleware {
	tracer := opts.tracer()
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			d := pubsub.DeliveryOf(msg)
			queue := message.SubscribeTopicFromCtx(ctx)
			attempt := 0
			if d != nil {
				queue, attempt = d.Queue, d.Attempt
			}
			handler := handlerName(message.HandlerNameFromCtx(ctx))
			attrs, queue := opts.common(queue)
			attrs = append(attrs,
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				semconv.MessagingMessageID(msg.UUID),
				semconv.MessagingMessageBodySize(len(msg.Payload)),
			)
			if opts.Service != "" {
				attrs = append(attrs, semconv.MessagingConsumerGroupName(opts.Service))
			}
			if handler != "" {
				attrs = append(attrs, AttrHandler.String(handler))
			}
			if attempt > 0 {
				attrs = append(attrs, AttrAttempt.Int(attempt))
			}
			// The backend's context carries the Delivery; the extracted
			// remote span becomes the parent without losing it.
			ctx, span := tracer.Start(opts.extract(ctx, msg), "process "+queue,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attrs...),
			)
			defer span.End()
			msg.SetContext(ctx)

			produced, err := h(msg)

			for _, p := range produced {
				// Watermill publishes returned messages with their own
				// context; give them this span so the reply's producer
				// span joins the trace.
				if !trace.SpanContextFromContext(p.Context()).IsValid() {
					p.SetContext(ctx)
				}
			}
			record(span, d, err, attempt)
			return produced, err
		}
	}
}

// handlerName drops the worker suffix the router adds to Watermill handler
// names ("handle_consensus_result[2]"): spans name the handler, not the
// worker.
func handlerName(s string) string {
	if i := strings.LastIndexByte(s, '['); i > 0 && strings.HasSuffix(s, "]") {
		if _, err := strconv.Atoi(s[i+1 : len(s)-1]); err == nil {
			return s[:i]
		}
	}
	return s
}

func record(span trace.Span, d *pubsub.Delivery, err error, attempt int) {
	var out pubsub.Outcome
	if d != nil {
		out = d.Outcome()
	}
	if err != nil {
		span.RecordError(err)
		span.SetAttributes(semconv.ErrorType(err))
	}
	switch {
	case out.DeadLetter != nil:
		span.AddEvent(EventDeadLettered, trace.WithAttributes(
			AttrError.String(out.DeadLetter.Error),
			AttrAttempt.Int(attempt),
			AttrHandler.String(out.DeadLetter.Handler),
		))
		span.SetStatus(codes.Error, "dead-lettered: "+out.DeadLetter.Error)
	case out.Retry:
		span.AddEvent(EventRetryScheduled, trace.WithAttributes(
			AttrRetryDelay.Int64(out.RetryDelay.Milliseconds()),
			AttrError.String(out.LastError),
			AttrAttempt.Int(attempt),
		))
		span.SetStatus(codes.Error, "retry scheduled: "+errText(err, out.LastError))
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	}
}

func errText(err error, fallback string) string {
	if err != nil {
		return err.Error()
	}
	return fallback
}

// Wrap is WrapPublisher(pub, o), in the shape router.Config.WrapPublisher
// takes:
//
//	opts := tracing.Options{TracerProvider: tp, Service: "centralcloud", Backend: backend.Scheme()}
//	router.Config{..., Middlewares: []message.HandlerMiddleware{tracing.Middleware(opts)}, WrapPublisher: opts.Wrap}
func (o Options) Wrap(pub message.Publisher) message.Publisher { return WrapPublisher(pub, o) }
