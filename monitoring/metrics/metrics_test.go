package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/monitoring/internal/backendtest"
	"github.com/quantumflow/quantumflow/monitoring/metrics"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

const waitFor = 20 * time.Second

func TestMain(m *testing.M) { pgtest.Main(m) }

// value returns the value of the series name{labels} in reg: a counter's
// or gauge's value, a histogram's sample count; -1 when absent.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// TestMetricsMatchTraffic sends known traffic through real routers on the
// mem backend and checks every counter, histogram and gauge against it:
// Singularity publishes N proposals and P metrics; CentralCloud consumes the
// proposals, of which K always fail (max_retries 1: each fails twice, is
// retried once and dead-lettered) and the rest succeed; nobody consumes
// the metrics queue, so its P messages stay pending.
func TestMetricsMatchTraffic(t *testing.T) {
	t.Parallel()
	for _, kind := range backendtest.Kinds() {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			metricsMatchTraffic(t, backendtest.Open(t, kind))
		})
	}
}

func metricsMatchTraffic(t *testing.T, b *pubsub.Backend) {
	const N, K, P = 10, 3, 4
	ctx := context.Background()
	backend := b.Scheme()

	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
	require.NoError(t, err)
	bus := telemetry.NewBus()
	require.NoError(t, m.Attach(bus))
	t.Cleanup(func() { m.Detach(bus) })

	sing, ok := topology.Default(topology.Singularity)
	require.True(t, ok)
	singRouter, err := router.New(router.Config{
		Service: sing, Backend: b, Telemetry: bus,
		Queues:   []string{topology.ConsensusQueue},
		Handlers: map[string]router.Handler{topology.HandleConsensusResult: func(*message.Message) error { return nil }},
	})
	require.NoError(t, err)

	cc, ok := topology.Default(topology.CentralCloud)
	require.True(t, ok)
	for i := range cc.Consumers {
		cc.Consumers[i].MaxRetries = 1
		cc.Consumers[i].RetryDelay = 10 * time.Millisecond
	}
	ccRouter, err := router.New(router.Config{
		Service: cc, Backend: b, Telemetry: bus,
		Queues: []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: func(msg *message.Message) error {
			var p struct{ Fail bool }
			if err := json.Unmarshal(msg.Payload, &p); err != nil {
				return err
			}
			if p.Fail {
				return errors.New("proposal rejected by test")
			}
			return nil
		}},
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ccRouter.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	select {
	case <-ccRouter.Running():
	case err := <-done:
		t.Fatalf("router did not start: %v", err)
	}

	proposals, err := singRouter.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	for i := range N {
		_, err := proposals.Publish(ctx, []byte(`{"fail":`+map[bool]string{true: "true", false: "false"}[i < K]+`}`))
		require.NoError(t, err)
	}
	metricsPub, err := singRouter.Publisher(topology.MetricsQueue)
	require.NoError(t, err)
	for range P {
		_, err := metricsPub.Publish(ctx, []byte(`{}`))
		require.NoError(t, err)
	}

	msgLabels := func(queue, service, handler string) map[string]string {
		return map[string]string{"queue": queue, "service": service, "backend": backend, "handler": handler}
	}
	consumedL := msgLabels(topology.ProposalsQueue, topology.CentralCloud, topology.HandleProposalForConsensus)
	require.Eventually(t, func() bool {
		return value(t, reg, metrics.MessagesConsumed, consumedL) == N-K &&
			value(t, reg, metrics.MessagesDeadLettered, consumedL) == K
	}, waitFor, 10*time.Millisecond)

	require.Equal(t, float64(N), value(t, reg, metrics.MessagesPublished, msgLabels(topology.ProposalsQueue, topology.Singularity, "")))
	require.Equal(t, float64(P), value(t, reg, metrics.MessagesPublished, msgLabels(topology.MetricsQueue, topology.Singularity, "")))
	require.Equal(t, float64(N-K), value(t, reg, metrics.MessagesConsumed, consumedL))
	require.Equal(t, float64(2*K), value(t, reg, metrics.MessagesFailed, consumedL))
	require.Equal(t, float64(K), value(t, reg, metrics.MessagesRetried, consumedL))
	require.Equal(t, float64(K), value(t, reg, metrics.MessagesDeadLettered, consumedL))
	require.Equal(t, float64(N-K+2*K), value(t, reg, metrics.HandlerDuration, consumedL), "one observation per attempt")
	require.Equal(t, float64(N-K), value(t, reg, metrics.EndToEndLatency, consumedL), "one observation per success")

	// The seed's events are counted by name.
	ev := func(name, queue, service string) float64 {
		return value(t, reg, metrics.Events, map[string]string{"event": name, "queue": queue, "service": service, "backend": backend})
	}
	require.Equal(t, float64(N), ev(telemetry.NameProposalPublished, topology.ProposalsQueue, topology.Singularity))
	require.Equal(t, float64(P), ev(telemetry.NameMetricsPublished, topology.MetricsQueue, topology.Singularity))
	require.Equal(t, float64(N-K), ev(telemetry.NameProposalReceived, topology.ProposalsQueue, topology.CentralCloud))

	// The poller's gauges match the backend, and K dead letters over a
	// threshold of K-1 raise the alert: gauge and log.
	logs := &testutil.SyncBuffer{}
	p, err := metrics.NewPoller(metrics.PollerOptions{
		Admin: b, Metrics: m, DLQAlertThreshold: K - 1,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	require.NoError(t, err)
	// Backends may settle (ack, dead-letter) after the handler and its
	// telemetry returned: poll until the last settle is visible.
	var snap metrics.Snapshot
	require.Eventually(t, func() bool {
		snap, err = p.Poll(ctx)
		if err != nil || snap.DeadLetters != K {
			return false
		}
		for _, q := range snap.Queues {
			if q.Queue == topology.ProposalsQueue && (q.InFlight != 0 || q.Pending != 0 || q.Scheduled != 0) {
				return false
			}
		}
		return true
	}, waitFor, 10*time.Millisecond)
	require.True(t, snap.Degraded)
	require.Equal(t, int64(K), snap.DeadLetters)

	ql := func(q string) map[string]string { return map[string]string{"queue": q, "backend": backend} }
	require.Equal(t, float64(P), value(t, reg, metrics.QueuePending, ql(topology.MetricsQueue)))
	require.Positive(t, value(t, reg, metrics.QueueOldestPendingAge, ql(topology.MetricsQueue)))
	require.Equal(t, float64(0), value(t, reg, metrics.QueuePending, ql(topology.ProposalsQueue)))
	require.Equal(t, float64(0), value(t, reg, metrics.QueueInFlight, ql(topology.ProposalsQueue)))
	require.Equal(t, float64(0), value(t, reg, metrics.QueueScheduled, ql(topology.ProposalsQueue)))
	require.Equal(t, float64(K), value(t, reg, metrics.QueueDeadLetters, ql(topology.ProposalsQueue)))
	require.Equal(t, float64(0), value(t, reg, metrics.QueueOldestPendingAge, ql(topology.ProposalsQueue)))
	require.Equal(t, float64(0), value(t, reg, metrics.QueuePaused, ql(topology.ProposalsQueue)))

	// A paused queue's gauge is 1 at the next poll.
	require.NoError(t, b.PauseQueue(ctx, topology.MetricsQueue))
	_, err = p.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, float64(1), value(t, reg, metrics.QueuePaused, ql(topology.MetricsQueue)))
	require.NoError(t, b.ResumeQueue(ctx, topology.MetricsQueue))
	bl := map[string]string{"backend": backend}
	require.Equal(t, float64(K), value(t, reg, metrics.DeadLetters, bl))
	require.Equal(t, float64(K-1), value(t, reg, metrics.DeadLetterThreshold, bl))
	require.Equal(t, float64(1), value(t, reg, metrics.DeadLetterAlert, bl))
	require.Equal(t, float64(1), value(t, reg, metrics.BackendUp, bl))
	require.Contains(t, logs.String(), "level=WARN msg=\"dead letters above alert threshold: degraded\"")
	// The running CentralCloud router is in the backend's registry.
	il := func(service, state string) map[string]string {
		return map[string]string{"service": service, "state": state, "backend": backend}
	}
	require.Equal(t, float64(1), value(t, reg, metrics.Instances, il(topology.CentralCloud, "live")))
	require.Equal(t, float64(0), value(t, reg, metrics.Instances, il(topology.CentralCloud, "stale")))
	require.Equal(t, float64(0), value(t, reg, metrics.Instances, il(topology.Singularity, "live")), "the Singularity router never ran")
	require.Equal(t, map[string]int{"live": 1}, snap.Instances[topology.CentralCloud])

	// Working the dead-letter queue clears the alert on the next poll.
	n, err := b.PurgeDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: topology.ProposalsQueue})
	require.NoError(t, err)
	require.Equal(t, K, n)
	_, err = p.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, float64(0), value(t, reg, metrics.DeadLetterAlert, bl))
	require.Contains(t, logs.String(), "dead letters back under alert threshold")
	require.Equal(t, 1, strings.Count(logs.String(), "above alert threshold"), "the alert is logged once per crossing")
}

func TestPollerReportsAnUnreachableBackend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "q1"}))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
	require.NoError(t, err)
	p, err := metrics.NewPoller(metrics.PollerOptions{Admin: b, Metrics: m})
	require.NoError(t, err)

	_, err = p.Poll(ctx)
	require.NoError(t, err)
	bl := map[string]string{"backend": "mem"}
	require.Equal(t, float64(1), value(t, reg, metrics.BackendUp, bl))
	require.Equal(t, float64(metrics.DefaultDLQAlertThreshold), value(t, reg, metrics.DeadLetterThreshold, bl))

	require.NoError(t, b.Close())
	_, err = p.Poll(ctx)
	require.ErrorIs(t, err, pubsub.ErrClosed)
	require.Equal(t, float64(0), value(t, reg, metrics.BackendUp, bl))
	require.Equal(t, float64(1), value(t, reg, metrics.StatsPolls, map[string]string{"backend": "mem", "result": "error"}))
}

func TestPollerRunStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
	require.NoError(t, err)
	p, err := metrics.NewPoller(metrics.PollerOptions{Admin: b, Metrics: m, Interval: 5 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool {
		return value(t, reg, metrics.StatsPolls, map[string]string{"backend": "mem", "result": "ok"}) >= 3
	}, waitFor, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}

func TestNewRegistersEveryNameAndRejectsDuplicates(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: "mem"})
	require.NoError(t, err)
	// Touch one series of each vector so that Gather lists them all.
	m.Observe(telemetry.MessagePublished, telemetry.Measurements{"count": 1}, telemetry.Metadata{"queue": "q"})
	p, err := metrics.NewPoller(metrics.PollerOptions{Admin: nil, Metrics: m})
	require.Error(t, err)
	require.Nil(t, p)

	_, err = metrics.New(metrics.Options{Registerer: reg})
	require.ErrorContains(t, err, "register")

	// Watermill's own builder shares the registry without clashing.
	_, err = m.WatermillBuilder().DecoratePublisher(nopPublisher{})
	require.NoError(t, err)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Contains(t, names, metrics.MessagesPublished)
	require.Contains(t, names, metrics.Events)
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }
