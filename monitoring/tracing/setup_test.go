package tracing_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/quantumflow/quantumflow/monitoring/tracing"
)

// These tests set process environment variables, so none runs in parallel.

func clearOTEL(t *testing.T) {
	for _, k := range []string{
		"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_EXPORTER_OTLP_INSECURE",
	} {
		t.Setenv(k, "")
	}
}

func TestSetupExportsNothingByDefault(t *testing.T) {
	clearOTEL(t)
	tp, shutdown, err := tracing.Setup(context.Background(), "singularity")
	require.NoError(t, err)
	_, span := tp.Tracer("t").Start(context.Background(), "x")
	require.False(t, span.IsRecording())
	span.End()
	require.NoError(t, shutdown(context.Background()))

	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	tp, _, err = tracing.Setup(context.Background(), "singularity")
	require.NoError(t, err)
	_, span = tp.Tracer("t").Start(context.Background(), "x")
	require.False(t, span.IsRecording())
}

func TestSetupRejectsUnknownExporterAndProtocol(t *testing.T) {
	clearOTEL(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	_, _, err := tracing.Setup(context.Background(), "s")
	require.ErrorContains(t, err, `OTEL_TRACES_EXPORTER="zipkin"`)

	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, _, err = tracing.Setup(context.Background(), "s")
	require.ErrorContains(t, err, `OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`)
}

func TestSetupExportsOTLPOverHTTP(t *testing.T) {
	clearOTEL(t)
	got := make(chan *coltrace.ExportTraceServiceRequest, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltrace.ExportTraceServiceRequest{}
		if r.URL.Path == "/v1/traces" && proto.Unmarshal(body, req) == nil {
			got <- req
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")

	tp, shutdown, err := tracing.Setup(context.Background(), "centralcloud")
	require.NoError(t, err)
	_, span := tp.Tracer("t").Start(context.Background(), "process proposals_for_consensus_queue")
	span.End()
	require.NoError(t, shutdown(context.Background()))

	req := <-got
	requireExported(t, req, "centralcloud", "process proposals_for_consensus_queue")
}

type collector struct {
	coltrace.UnimplementedTraceServiceServer
	got chan *coltrace.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.got <- req
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func TestSetupExportsOTLPOverGRPC(t *testing.T) {
	clearOTEL(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &collector{got: make(chan *coltrace.ExportTraceServiceRequest, 4)}
	gs := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "singularity-7")

	tp, shutdown, err := tracing.Setup(context.Background(), "singularity")
	require.NoError(t, err)
	_, span := tp.Tracer("t").Start(context.Background(), "send consensus_results_queue")
	span.End()
	require.NoError(t, shutdown(context.Background()))

	requireExported(t, <-c.got, "singularity-7", "send consensus_results_queue")
}

func requireExported(t *testing.T, req *coltrace.ExportTraceServiceRequest, service, span string) {
	t.Helper()
	require.Len(t, req.ResourceSpans, 1)
	rs := req.ResourceSpans[0]
	var svc string
	for _, kv := range rs.Resource.Attributes {
		if kv.Key == "service.name" {
			svc = kv.Value.GetStringValue()
		}
	}
	require.Equal(t, service, svc)
	require.Len(t, rs.ScopeSpans, 1)
	require.Equal(t, span, rs.ScopeSpans[0].Spans[0].Name)
}
