// Package tracing carries OpenTelemetry trace context through QuantumFlow
// messages, so that one trace follows a message from the service that
// publishes it into the handler that consumes it, and on into any reply
// that handler publishes (a proposal from a Singularity instance, voted on
// in CentralCloud, and its consensus result back at the instance).
//
// The trace context travels in message metadata as W3C Trace Context
// (traceparent, tracestate) and W3C Baggage, which every backend stores
// with the message, so it survives retries, restarts and a stay in the
// dead-letter queue.
//
// Two seams put it to work:
//
//   - WrapPublisher decorates a Watermill publisher: each published message
//     gets a producer span ("send QUEUE"), a child of the span in the
//     message's context, and that span's context is written into the
//     message's metadata. StartPublish does the same for one message when
//     the caller publishes some other way.
//   - Middleware is a Watermill HandlerMiddleware: each handler attempt gets
//     a consumer span ("process QUEUE"), a child of the context found in the
//     metadata, and the handler's msg.Context() carries that span, so a
//     reply published with that context continues the trace. Retries and
//     dead-lettering scheduled by the inner middleware appear as span events
//     and the span's status.
//
// Spans follow OpenTelemetry's messaging semantic conventions
// (messaging.system "quantumflow", messaging.destination.name,
// messaging.operation.type and .name, messaging.message.id,
// messaging.message.body.size, messaging.consumer.group.name for the
// consuming service) plus quantumflow.backend, quantumflow.handler and
// quantumflow.attempt.
//
// Nothing is exported by default. Setup builds a TracerProvider from the
// standard OTEL_ environment variables and exports over OTLP (HTTP or
// gRPC) only when OTEL_TRACES_EXPORTER or an OTEL_EXPORTER_OTLP_ endpoint
// asks for it.
package tracing
