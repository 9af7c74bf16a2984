package tracing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumflow/quantumflow/monitoring/tracing"
	"github.com/quantumflow/quantumflow/pubsub"
)

func newRecorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

func byName(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	require.Failf(t, "span not found", "no span %q", name)
	return nil
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// capture is a publisher that keeps what it is given, standing for the
// backend's storage: the test only needs the metadata that would travel.
type capture struct{ msgs []*message.Message }

func (c *capture) Publish(_ string, msgs ...*message.Message) error {
	c.msgs = append(c.msgs, msgs...)
	return nil
}
func (c *capture) Close() error { return nil }

// redeliver copies a published message as a backend hands it out: fresh
// context, same id, payload and metadata, a Delivery attached.
func redeliver(msg *message.Message, queue string, attempt int) *message.Message {
	out := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		out.Metadata.Set(k, v)
	}
	pubsub.AttachDelivery(out, &pubsub.Delivery{Queue: queue, Attempt: attempt})
	return out
}

func TestPublishThenConsumeIsOneTrace(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	opts := tracing.Options{TracerProvider: tp, Service: "centralcloud", Backend: "mem"}

	root, rootSpan := tp.Tracer("test").Start(context.Background(), "propose")
	sink := &capture{}
	pub := tracing.WrapPublisher(sink, opts)
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"id":1}`))
	msg.SetContext(root)
	require.NoError(t, pub.Publish("proposals_for_consensus_queue", msg))
	rootSpan.End()
	require.NotEmpty(t, sink.msgs[0].Metadata.Get("traceparent"))

	in := redeliver(sink.msgs[0], "proposals_for_consensus_queue", 1)
	var (
		handlerCtx  context.Context
		hasDelivery bool
	)
	h := tracing.Middleware(opts)(func(m *message.Message) ([]*message.Message, error) {
		handlerCtx = m.Context()
		hasDelivery = pubsub.DeliveryOf(m) != nil
		return nil, nil
	})
	_, err := h(in)
	require.NoError(t, err)

	spans := rec.Ended()
	require.Len(t, spans, 3)
	send, process := byName(t, spans, "send proposals_for_consensus_queue"), byName(t, spans, "process proposals_for_consensus_queue")
	require.Equal(t, "send proposals_for_consensus_queue", send.Name())
	require.Equal(t, trace.SpanKindProducer, send.SpanKind())
	require.Equal(t, "process proposals_for_consensus_queue", process.Name())
	require.Equal(t, trace.SpanKindConsumer, process.SpanKind())
	for _, s := range spans {
		require.Equal(t, rootSpan.SpanContext().TraceID(), s.SpanContext().TraceID())
	}
	require.Equal(t, send.SpanContext().SpanID(), process.Parent().SpanID())
	require.True(t, process.Parent().IsRemote())
	require.Equal(t, "quantumflow", attr(process, "messaging.system").AsString())
	require.Equal(t, "proposals_for_consensus_queue", attr(process, "messaging.destination.name").AsString())
	require.Equal(t, "process", attr(process, "messaging.operation.type").AsString())
	require.Equal(t, "send", attr(send, "messaging.operation.type").AsString())
	require.Equal(t, in.UUID, attr(process, "messaging.message.id").AsString())
	require.Equal(t, "centralcloud", attr(process, "messaging.consumer.group.name").AsString())
	require.Equal(t, int64(1), attr(process, tracing.AttrAttempt).AsInt64())
	require.Equal(t, "mem", attr(send, tracing.AttrBackend).AsString())

	// The handler's context carries the consumer span, and the delivery.
	require.Equal(t, process.SpanContext().SpanID(), trace.SpanContextFromContext(handlerCtx).SpanID())
	require.True(t, hasDelivery)
}

func TestMiddlewareRecordsRetryAndDeadLetter(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	opts := tracing.Options{TracerProvider: tp}
	sink := &capture{}
	msg := message.NewMessage(watermill.NewUUID(), []byte(`x`))
	require.NoError(t, tracing.WrapPublisher(sink, opts).Publish("q", msg))

	boom := errors.New("boom")
	// Stand-in for the retry policy inside the tracing middleware: it asks
	// the backend for a delayed retry on attempt 1 and a dead letter on 2.
	h := tracing.Middleware(opts)(func(m *message.Message) ([]*message.Message, error) {
		d := pubsub.DeliveryOf(m)
		if d.Attempt == 1 {
			d.RetryAfter(250*time.Millisecond, boom)
			return nil, boom
		}
		d.MarkDeadLetter(pubsub.DeadLetterReason{Error: boom.Error(), Handler: "h", Service: "s"})
		return nil, nil
	})
	_, err := h(redeliver(sink.msgs[0], "q", 1))
	require.ErrorIs(t, err, boom)
	_, err = h(redeliver(sink.msgs[0], "q", 2))
	require.NoError(t, err)

	spans := rec.Ended()
	require.Len(t, spans, 3)
	first, second := spans[1], spans[2]
	require.Equal(t, first.Parent().SpanID(), second.Parent().SpanID(), "both attempts are children of the send span")
	require.Equal(t, codes.Error, first.Status().Code)
	require.Equal(t, tracing.EventRetryScheduled, first.Events()[len(first.Events())-1].Name)
	require.Equal(t, codes.Error, second.Status().Code)
	require.Contains(t, second.Status().Description, "dead-lettered: boom")
	require.Equal(t, tracing.EventDeadLettered, second.Events()[len(second.Events())-1].Name)
	require.Equal(t, int64(2), attr(second, tracing.AttrAttempt).AsInt64())
}

func TestReturnedMessagesContinueTheTrace(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	opts := tracing.Options{TracerProvider: tp}
	sink := &capture{}
	pub := tracing.WrapPublisher(sink, opts)
	require.NoError(t, pub.Publish("in", message.NewMessage(watermill.NewUUID(), nil)))

	h := tracing.Middleware(opts)(func(m *message.Message) ([]*message.Message, error) {
		return []*message.Message{message.NewMessage(watermill.NewUUID(), nil)}, nil
	})
	produced, err := h(redeliver(sink.msgs[0], "in", 1))
	require.NoError(t, err)
	// Watermill's router publishes what the handler returned.
	require.NoError(t, pub.Publish("out", produced...))

	spans := rec.Ended()
	require.Len(t, spans, 3)
	process, reply := spans[1], spans[2]
	require.Equal(t, "send out", reply.Name())
	require.Equal(t, process.SpanContext().SpanID(), reply.Parent().SpanID())
	require.Equal(t, spans[0].SpanContext().TraceID(), reply.SpanContext().TraceID())
}

func TestPublishErrorIsRecorded(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	boom := errors.New("storage down")
	pub := tracing.WrapPublisher(failing{boom}, tracing.Options{TracerProvider: tp})
	require.ErrorIs(t, pub.Publish("q", message.NewMessage(watermill.NewUUID(), nil)), boom)
	spans := rec.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, codes.Error, spans[0].Status().Code)
}

type failing struct{ err error }

func (f failing) Publish(string, ...*message.Message) error { return f.err }
func (f failing) Close() error                              { return nil }

func TestInjectExtractRoundTrip(t *testing.T) {
	t.Parallel()
	_, tp := newRecorder(t)
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	msg := message.NewMessage(watermill.NewUUID(), nil)
	tracing.Inject(ctx, msg)
	got := trace.SpanContextFromContext(tracing.Extract(context.Background(), msg))
	require.Equal(t, span.SpanContext().TraceID(), got.TraceID())
	require.Equal(t, span.SpanContext().SpanID(), got.SpanID())
}

// TestStartPublishUsesGlobalProvider checks the package-level StartPublish:
// the producer span comes from the global TracerProvider, and the message
// carries its context (in its metadata for the consumer, and as its Go
// context). Not parallel: it sets the global provider.
func TestStartPublishUsesGlobalProvider(t *testing.T) {
	rec, tp := newRecorder(t)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"id":1}`))
	ctx, span := tracing.StartPublish(context.Background(), "proposals", msg)
	tracing.End(span, nil)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, "send proposals", spans[0].Name())
	require.Equal(t, trace.SpanKindProducer, spans[0].SpanKind())
	require.Equal(t, msg.UUID, attr(spans[0], "messaging.message.id").AsString())
	require.Equal(t, spans[0].SpanContext().SpanID(), trace.SpanContextFromContext(ctx).SpanID())
	require.Equal(t, spans[0].SpanContext().SpanID(), trace.SpanContextFromContext(msg.Context()).SpanID())
	require.Contains(t, msg.Metadata.Get("traceparent"), spans[0].SpanContext().TraceID().String(),
		"the span's context travels in the message's metadata")
}
