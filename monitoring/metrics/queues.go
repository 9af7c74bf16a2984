package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// queueGauge is one of the per-queue gauges a poll sets.
type queueGauge int

const (
	gaugePending queueGauge = iota
	gaugeInFlight
	gaugeScheduled
	gaugeDeadLetters
	gaugeOldestAge
	gaugePaused
	numQueueGauges
)

// queueSeries is one queue's (or instance queue's) values of the gauges.
type queueSeries struct {
	queue    string // without its instance
	instance string // "" for a queue
	values   [numQueueGauges]float64
}

// queueGauges exports the per-queue gauges of the latest poll: a queue's
// series are labelled queue and backend; an instance queue's the queue
// (without its instance), instance_id and backend. The two label sets
// share the gauges' names, which a GaugeVec cannot do without adding an
// empty instance_id to every queue's series (and changing them); so it is
// an unchecked collector (Describe sends nothing), which a registry
// accepts. A poll replaces every series at once, so a queue that
// disappeared stops being exported.
type queueGauges struct {
	backend string
	plain   [numQueueGauges]*prometheus.Desc
	inst    [numQueueGauges]*prometheus.Desc

	mu     sync.Mutex
	series []queueSeries
}

func newQueueGauges(backend string) *queueGauges {
	g := &queueGauges{backend: backend}
	for i, d := range []struct{ name, help string }{
		gaugePending:     {QueuePending, "Messages ready to be delivered now."},
		gaugeInFlight:    {QueueInFlight, "Messages delivered and not yet acked or nacked."},
		gaugeScheduled:   {QueueScheduled, "Messages waiting for a delayed retry, or published delayed or scheduled."},
		gaugeDeadLetters: {QueueDeadLetters, "Dead letters whose original queue is this one."},
		gaugeOldestAge:   {QueueOldestPendingAge, "Age of the oldest pending message, in seconds (0 when none)."},
		gaugePaused:      {QueuePaused, "1 while the queue is paused (quantumflow pause): no consumer takes its messages; else 0."},
	} {
		// One help text for both label sets: a registry refuses a name
		// with two.
		help := d.help + " An instance queue (addressed and broadcast delivery) is labelled with its queue and instance_id."
		g.plain[i] = prometheus.NewDesc(d.name, help, []string{LabelQueue, LabelBackend}, nil)
		g.inst[i] = prometheus.NewDesc(d.name, help, []string{LabelQueue, LabelInstance, LabelBackend}, nil)
	}
	return g
}

// set replaces the series.
func (g *queueGauges) set(series []queueSeries) {
	g.mu.Lock()
	g.series = series
	g.mu.Unlock()
}

// Describe sends nothing: the collector is unchecked.
func (g *queueGauges) Describe(chan<- *prometheus.Desc) {}

func (g *queueGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	series := g.series
	g.mu.Unlock()
	for _, s := range series {
		for i, v := range s.values {
			if s.instance == "" {
				ch <- prometheus.MustNewConstMetric(g.plain[i], prometheus.GaugeValue, v, s.queue, g.backend)
			} else {
				ch <- prometheus.MustNewConstMetric(g.inst[i], prometheus.GaugeValue, v, s.queue, s.instance, g.backend)
			}
		}
	}
}
