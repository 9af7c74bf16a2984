// Package metrics exports QuantumFlow's Prometheus metrics: counters and
// histograms fed by the telemetry events services emit, and per-queue and
// instance gauges that a Poller refreshes from the backend's Admin.Stats
// and instance registry.
//
// Every metric is named quantumflow_*; the constants below are the names,
// and deploy/prometheus/alerts.yml and deploy/grafana/quantumflow.json use
// exactly these (a test checks it).
//
// Counters count telemetry events, so the seed's 14 events (proposal_published,
// consensus_approved, ...) and the generic message_* events keep working as
// the source of truth: attach a Metrics to the service's telemetry.Bus and
// every event becomes a sample.
//
// # Instance queues
//
// Addressed and broadcast queues keep each instance's messages in an
// instance queue, QUEUE@INSTANCE. Its gauges (quantumflow_queue_*) carry
// the queue's name in queue and the instance in instance_id, so that
// rules on a queue (queue="rollback_triggers_queue") see every instance's
// copies; sum by (queue) gives a queue's totals. The label is instance_id,
// not instance, because Prometheus sets instance on every scraped series
// (the scrape target) and would rename ours exported_instance. Events
// (the counters and histograms) carry no instance label: each service
// process counts its own, so the scrape target already tells them apart.
//
// The number of instance_id series is bounded: an instance queue is
// exported while its instance is in the registry and not gone (a
// heartbeat within PollerOptions.InstanceTTL, the service's instance_ttl,
// 24h by default) or while anything is in it (pending, in flight, waiting
// for retry, dead letters: a broadcast copy kept for a gone instance);
// and at most PollerOptions.MaxInstanceQueueSeries instance queues (1000
// by default, in name order) are exported one by one, the rest summed per
// queue under instance_id="(other)" (oldest age: their maximum), a value
// no instance id can take. quantumflow_instances has a series per service
// and state (live, stale, gone).
//
//	reg := prometheus.NewRegistry()
//	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: backend.Scheme()})
//	err = m.Attach(bus)
//	defer m.Detach(bus)
package metrics

import (
	"fmt"
	"sync"

	wmmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumflow/quantumflow/telemetry"
)

// Namespace prefixes every metric name.
const Namespace = "quantumflow"

// Metric names, as exported (namespace included).
const (
	// Counters, from telemetry events.
	MessagesPublished    = "quantumflow_messages_published_total"
	MessagesConsumed     = "quantumflow_messages_consumed_total"
	MessagesFailed       = "quantumflow_messages_failed_total"
	MessagesRetried      = "quantumflow_messages_retried_total"
	MessagesDeadLettered = "quantumflow_messages_dead_lettered_total"
	PublishFailures      = "quantumflow_publish_failures_total"
	Events               = "quantumflow_events_total"
	// Histograms, from telemetry events.
	HandlerDuration = "quantumflow_handler_duration_seconds"
	EndToEndLatency = "quantumflow_end_to_end_latency_seconds"
	// Gauges, from the Poller.
	QueuePending          = "quantumflow_queue_pending_messages"
	QueueInFlight         = "quantumflow_queue_in_flight_messages"
	QueueScheduled        = "quantumflow_queue_scheduled_messages"
	QueueDeadLetters      = "quantumflow_queue_dead_letters"
	QueueOldestPendingAge = "quantumflow_queue_oldest_pending_age_seconds"
	QueuePaused           = "quantumflow_queue_paused"
	DeadLetters           = "quantumflow_dead_letters"
	DeadLetterThreshold   = "quantumflow_dead_letters_alert_threshold"
	DeadLetterAlert       = "quantumflow_dead_letters_alert"
	BackendUp             = "quantumflow_backend_up"
	StatsPolls            = "quantumflow_stats_polls_total"
	// Instances counts the instance registry's instances by service and
	// state (live, stale, gone), from the Poller.
	Instances = "quantumflow_instances"
)

// Label names.
const (
	LabelQueue   = "queue"
	LabelService = "service"
	LabelBackend = "backend"
	LabelHandler = "handler"
	LabelEvent   = "event"
	LabelResult  = "result"
	// LabelInstance is an instance queue's instance (see the package
	// documentation for why it is not "instance").
	LabelInstance = "instance_id"
	LabelState    = "state"
)

// DefaultHandlerBuckets are the handler duration buckets, in seconds:
// handlers take from sub-millisecond to the seed's timeouts.
var DefaultHandlerBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// DefaultLatencyBuckets are the end-to-end latency buckets, in seconds:
// from an idle queue's milliseconds to a backlog's minutes.
var DefaultLatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// Options configure New.
type Options struct {
	// Registerer receives the collectors. Defaults to
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Backend is the value of the backend label (the URL scheme: mem,
	// postgres, nats). Telemetry events do not carry it.
	Backend string
	// Service is the service label for events that do not name one.
	Service string
	// HandlerBuckets defaults to DefaultHandlerBuckets.
	HandlerBuckets []float64
	// LatencyBuckets defaults to DefaultLatencyBuckets.
	LatencyBuckets []float64
}

// Metrics holds QuantumFlow's collectors. It is safe for concurrent use.
type Metrics struct {
	opts Options
	reg  prometheus.Registerer

	published, consumed, failed, retried, deadLettered, publishFailed *prometheus.CounterVec
	events                                                            *prometheus.CounterVec
	handlerDuration, latency                                          *prometheus.HistogramVec

	queues                                     *queueGauges
	deadTotal, threshold, alert, up, instances *prometheus.GaugeVec
	polls                                      *prometheus.CounterVec

	mu       sync.Mutex
	attached map[*telemetry.Bus]string
}

// New creates the collectors and registers them. Registering two Metrics
// on one registry is an error (duplicate collectors).
func New(opts Options) (*Metrics, error) {
	if opts.Registerer == nil {
		opts.Registerer = prometheus.DefaultRegisterer
	}
	if opts.HandlerBuckets == nil {
		opts.HandlerBuckets = DefaultHandlerBuckets
	}
	if opts.LatencyBuckets == nil {
		opts.LatencyBuckets = DefaultLatencyBuckets
	}
	msgLabels := []string{LabelQueue, LabelService, LabelBackend, LabelHandler}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		opts:          opts,
		reg:           opts.Registerer,
		published:     counter(MessagesPublished, "Messages published (telemetry message_published).", msgLabels),
		consumed:      counter(MessagesConsumed, "Messages handled successfully (telemetry message_consumed).", msgLabels),
		failed:        counter(MessagesFailed, "Handler attempts that failed (telemetry message_failed).", msgLabels),
		retried:       counter(MessagesRetried, "Failed attempts scheduled for a delayed retry (telemetry message_retried).", msgLabels),
		deadLettered:  counter(MessagesDeadLettered, "Messages moved to the dead-letter queue (telemetry message_dead_lettered).", msgLabels),
		publishFailed: counter(PublishFailures, "Publishes that failed (telemetry publish_failed).", msgLabels),
		events:        counter(Events, "Telemetry events under [evolution QuantumFlow], by event name.", []string{LabelEvent, LabelQueue, LabelService, LabelBackend}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: HandlerDuration, Help: "Duration of each handler attempt, middleware included, in seconds.", Buckets: opts.HandlerBuckets,
		}, msgLabels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: EndToEndLatency, Help: "Time from publish to the start of the successful handler attempt, in seconds.", Buckets: opts.LatencyBuckets,
		}, msgLabels),
		queues:    newQueueGauges(opts.Backend),
		deadTotal: gauge(DeadLetters, "Dead letters in all queues.", []string{LabelBackend}),
		threshold: gauge(DeadLetterThreshold, "Dead letters above which the backend is reported degraded.", []string{LabelBackend}),
		alert:     gauge(DeadLetterAlert, "1 while dead letters exceed the alert threshold, else 0.", []string{LabelBackend}),
		up:        gauge(BackendUp, "1 if the last stats poll of the backend succeeded, else 0.", []string{LabelBackend}),
		polls:     counter(StatsPolls, "Stats polls of the backend, by result (ok, error).", []string{LabelBackend, LabelResult}),
		instances: gauge(Instances, "Instances in the instance registry, by service and state: live (a heartbeat within the stale timeout), stale (none since), gone (none within the instance TTL).",
			[]string{LabelService, LabelState, LabelBackend}),
		attached: map[*telemetry.Bus]string{},
	}
	for _, c := range []prometheus.Collector{
		m.published, m.consumed, m.failed, m.retried, m.deadLettered, m.publishFailed, m.events,
		m.handlerDuration, m.latency,
		m.queues, m.deadTotal, m.threshold, m.alert, m.up, m.polls, m.instances,
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Names returns the name of every metric New registers.
func Names() []string {
	return []string{
		MessagesPublished, MessagesConsumed, MessagesFailed, MessagesRetried, MessagesDeadLettered,
		PublishFailures, Events, HandlerDuration, EndToEndLatency,
		QueuePending, QueueInFlight, QueueScheduled, QueueDeadLetters, QueueOldestPendingAge, QueuePaused,
		DeadLetters, DeadLetterThreshold, DeadLetterAlert, BackendUp, StatsPolls, Instances,
	}
}

// Attach attaches m to bus under the id "quantumflow_metrics", listening
// to every [evolution QuantumFlow] event. Attaching twice to one bus is an
// error.
func (m *Metrics) Attach(bus *telemetry.Bus) error {
	if bus == nil {
		bus = telemetry.Default
	}
	id := fmt.Sprintf("quantumflow_metrics_%p", m)
	if err := bus.Attach(id, telemetry.Prefix, m.Observe); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	m.mu.Lock()
	m.attached[bus] = id
	m.mu.Unlock()
	return nil
}

// Detach detaches m from bus.
func (m *Metrics) Detach(bus *telemetry.Bus) {
	if bus == nil {
		bus = telemetry.Default
	}
	m.mu.Lock()
	id, ok := m.attached[bus]
	delete(m.attached, bus)
	m.mu.Unlock()
	if ok {
		bus.Detach(id)
	}
}

// Observe records one telemetry event. It is the function Attach attaches;
// call it directly to feed events from elsewhere.
func (m *Metrics) Observe(event telemetry.Event, meas telemetry.Measurements, md telemetry.Metadata) {
	if !event.HasPrefix(telemetry.Prefix) || len(event) != len(telemetry.Prefix)+1 {
		return
	}
	queue, service, handler := str(md[telemetry.MetaQueue]), str(md[telemetry.MetaService]), str(md[telemetry.MetaHandler])
	if service == "" {
		service = m.opts.Service
	}
	backend := m.opts.Backend
	n := 1.0
	if c, ok := meas[telemetry.MeasureCount]; ok && c > 0 {
		n = c
	}
	m.events.WithLabelValues(event.Name(), queue, service, backend).Add(n)

	labels := []string{queue, service, backend, handler}
	switch event.Name() {
	case telemetry.NameMessagePublished:
		m.published.WithLabelValues(labels...).Add(n)
	case telemetry.NamePublishFailed:
		m.publishFailed.WithLabelValues(labels...).Add(n)
	case telemetry.NameMessageConsumed:
		m.consumed.WithLabelValues(labels...).Add(n)
		if d, ok := meas[telemetry.MeasureDuration]; ok {
			m.handlerDuration.WithLabelValues(labels...).Observe(d / 1000)
		}
		if l, ok := meas[telemetry.MeasureLatency]; ok {
			m.latency.WithLabelValues(labels...).Observe(max(l, 0) / 1000)
		}
	case telemetry.NameMessageFailed:
		m.failed.WithLabelValues(labels...).Add(n)
		if d, ok := meas[telemetry.MeasureDuration]; ok {
			m.handlerDuration.WithLabelValues(labels...).Observe(d / 1000)
		}
	case telemetry.NameMessageRetried:
		m.retried.WithLabelValues(labels...).Add(n)
	case telemetry.NameMessageDeadLettered:
		m.deadLettered.WithLabelValues(labels...).Add(n)
	}
}

// WatermillBuilder returns Watermill's Prometheus metrics builder
// (components/metrics) registering on the same registry under
// quantumflow_watermill_*, for a service that also wants Watermill's own
// router, publisher and subscriber metrics (AddPrometheusRouterMetrics,
// DecoratePublisher, DecorateSubscriber). QuantumFlow's metrics above do
// not depend on it: Watermill's carry no queue, service or backend labels
// and know nothing of retries or dead letters.
func (m *Metrics) WatermillBuilder() wmmetrics.PrometheusMetricsBuilder {
	return wmmetrics.NewPrometheusMetricsBuilder(m.reg, Namespace, "watermill")
}

func str(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	case fmt.Stringer:
		return s.String()
	default:
		return fmt.Sprint(s)
	}
}
