package tracing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/monitoring/internal/backendtest"
	"github.com/quantumflow/quantumflow/monitoring/tracing"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

const waitFor = 20 * time.Second

func TestMain(m *testing.M) { pgtest.Main(m) }

// service is one traced service: its own tracer provider and recorder, as
// if it ran in its own process.
type service struct {
	router *router.Router
	rec    *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func startService(t *testing.T, b *pubsub.Backend, name string, queues []string, handlers map[string]router.Handler, edit func(*topology.ServiceConfig)) *service {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg, ok := topology.Default(name)
	require.True(t, ok)
	if edit != nil {
		edit(&cfg)
	}
	opts := tracing.Options{TracerProvider: tp, Service: name, Backend: b.Scheme()}
	r, err := router.New(router.Config{
		Service: cfg, Backend: b, Handlers: handlers, Queues: queues,
		Telemetry:     telemetry.NewBus(),
		Middlewares:   []message.HandlerMiddleware{tracing.Middleware(opts)},
		WrapPublisher: opts.Wrap,
	})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
		require.NoError(t, tp.Shutdown(context.Background()))
	})
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("%s did not start: %v", name, err)
	}
	return &service{router: r, rec: rec, tp: tp}
}

// TestTraceSpansTwoServices follows one proposal: a Singularity instance
// publishes it, CentralCloud's handler consumes it and publishes the
// consensus result from the handler's context, and the instance's handler
// consumes that. Each service records its own spans; together they are one
// trace: send → process → send → process, each the parent of the next.
func TestTraceSpansTwoServices(t *testing.T) {
	t.Parallel()
	for _, kind := range backendtest.Kinds() {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			traceSpansTwoServices(t, backendtest.Open(t, kind))
		})
	}
}

func traceSpansTwoServices(t *testing.T, b *pubsub.Backend) {

	var cc *service
	got := make(chan context.Context, 1)
	sing := startService(t, b, topology.Singularity, []string{topology.ConsensusQueue}, map[string]router.Handler{
		topology.HandleConsensusResult: func(msg *message.Message) error {
			got <- msg.Context()
			return nil
		},
	}, nil)
	cc = startService(t, b, topology.CentralCloud, []string{topology.ProposalsQueue}, map[string]router.Handler{
		topology.HandleProposalForConsensus: func(msg *message.Message) error {
			pub, err := cc.router.Publisher(topology.ConsensusQueue)
			if err != nil {
				return err
			}
			_, err = pub.Reply(msg.Context(), msg, []byte(`{"approved":true}`))
			return err
		},
	}, nil)

	ctx, root := sing.tp.Tracer("test").Start(context.Background(), "evolve")
	pub, err := sing.router.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	_, err = pub.Publish(ctx, []byte(`{"proposal":"p1"}`))
	require.NoError(t, err)
	root.End()

	var handlerCtx context.Context
	select {
	case handlerCtx = <-got:
	case <-time.After(waitFor):
		t.Fatal("the consensus result never reached the instance")
	}
	traceID := root.SpanContext().TraceID()
	require.Equal(t, traceID, trace.SpanContextFromContext(handlerCtx).TraceID())

	// Spans end after the handler returns: wait for the last one.
	var singSpans, ccSpans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		singSpans, ccSpans = sing.rec.Ended(), cc.rec.Ended()
		return len(singSpans) == 3 && len(ccSpans) == 2
	}, waitFor, 5*time.Millisecond)

	sendProposal := byName(t, singSpans, "send "+topology.ProposalsQueue)
	processProposal := byName(t, ccSpans, "process "+topology.ProposalsQueue)
	sendResult := byName(t, ccSpans, "send "+topology.ConsensusQueue)
	processResult := byName(t, singSpans, "process "+topology.ConsensusQueue)
	chain := []sdktrace.ReadOnlySpan{sendProposal, processProposal, sendResult, processResult}
	parent := root.SpanContext().SpanID()
	for _, s := range chain {
		require.Equal(t, traceID, s.SpanContext().TraceID(), s.Name())
		require.Equal(t, parent, s.Parent().SpanID(), "%s's parent", s.Name())
		require.Equal(t, codes.Unset, s.Status().Code, s.Name())
		parent = s.SpanContext().SpanID()
	}
	require.Equal(t, trace.SpanKindProducer, sendProposal.SpanKind())
	require.Equal(t, trace.SpanKindConsumer, processProposal.SpanKind())
	require.Equal(t, topology.CentralCloud, attr(processProposal, "messaging.consumer.group.name").AsString())
	require.Equal(t, topology.HandleProposalForConsensus, attr(processProposal, tracing.AttrHandler).AsString())
	require.Equal(t, topology.Singularity, attr(processResult, "messaging.consumer.group.name").AsString())
	require.Equal(t, b.Scheme(), attr(sendResult, tracing.AttrBackend).AsString())
}

// TestTraceRecordsRetriesAndDeadLetter runs a handler that always fails
// through the real middleware stack (max_retries 1): the trace has one
// consumer span per attempt, the first with a scheduled retry, the second
// with the dead-lettering.
func TestTraceRecordsRetriesAndDeadLetter(t *testing.T) {
	t.Parallel()
	for _, kind := range backendtest.Kinds() {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			traceRecordsRetriesAndDeadLetter(t, backendtest.Open(t, kind))
		})
	}
}

func traceRecordsRetriesAndDeadLetter(t *testing.T, b *pubsub.Backend) {

	cc := startService(t, b, topology.CentralCloud, []string{topology.PatternsQueue}, map[string]router.Handler{
		topology.HandlePatternDiscovered: func(*message.Message) error { return errors.New("aggregator offline") },
	}, func(c *topology.ServiceConfig) {
		for i := range c.Consumers {
			c.Consumers[i].MaxRetries = 1
			c.Consumers[i].RetryDelay = 10 * time.Millisecond
		}
	})
	sing := startService(t, b, topology.Singularity, []string{topology.ConsensusQueue}, map[string]router.Handler{
		topology.HandleConsensusResult: func(*message.Message) error { return nil },
	}, nil)

	pub, err := sing.router.Publisher(topology.PatternsQueue)
	require.NoError(t, err)
	_, err = pub.Publish(context.Background(), []byte(`{"pattern":"x"}`))
	require.NoError(t, err)

	var spans []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = cc.rec.Ended()
		return len(spans) == 2
	}, waitFor, 5*time.Millisecond)
	send := sing.rec.Ended()[0]
	first, second := spans[0], spans[1]
	for _, s := range spans {
		require.Equal(t, send.SpanContext().TraceID(), s.SpanContext().TraceID())
		require.Equal(t, send.SpanContext().SpanID(), s.Parent().SpanID())
		require.Equal(t, codes.Error, s.Status().Code)
	}
	require.Equal(t, int64(1), attr(first, tracing.AttrAttempt).AsInt64())
	require.Equal(t, int64(2), attr(second, tracing.AttrAttempt).AsInt64())
	require.True(t, hasEvent(first, tracing.EventRetryScheduled))
	require.False(t, hasEvent(first, tracing.EventDeadLettered))
	require.True(t, hasEvent(second, tracing.EventDeadLettered))
	require.Contains(t, second.Status().Description, "aggregator offline")

	// The backend settles after the handler (and its span) returned.
	var dls []pubsub.DeadLetter
	require.Eventually(t, func() bool {
		dls, err = b.ListDeadLetters(context.Background(), pubsub.DeadLetterQuery{Queue: topology.PatternsQueue})
		return err == nil && len(dls) == 1
	}, waitFor, 10*time.Millisecond)
	require.NotEmpty(t, dls[0].Metadata["traceparent"], "the dead letter keeps its trace context for a later retry")
}

func hasEvent(s sdktrace.ReadOnlySpan, name string) bool {
	for _, e := range s.Events() {
		if e.Name == name {
			return true
		}
	}
	return false
}
