package metrics_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/quantumflow/quantumflow/monitoring/metrics"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Counters count the telemetry events of the bus they are attached to: here
// what a Singularity router's publisher emits for one proposal.
func Example() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: "postgres"})
	if err != nil {
		panic(err)
	}
	bus := telemetry.NewBus()
	if err := m.Attach(bus); err != nil {
		panic(err)
	}
	defer m.Detach(bus)

	md := telemetry.Metadata{telemetry.MetaQueue: topology.ProposalsQueue, telemetry.MetaService: topology.Singularity}
	bus.Execute(telemetry.ProposalPublished, telemetry.Measurements{telemetry.MeasureCount: 1}, md)
	bus.Execute(telemetry.MessagePublished, telemetry.Measurements{telemetry.MeasureCount: 1}, md)

	mfs, _ := reg.Gather()
	var buf bytes.Buffer
	for _, mf := range mfs {
		_ = expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain)).Encode(mf)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(line, metrics.MessagesPublished+"{") || strings.HasPrefix(line, metrics.Events+"{") {
			fmt.Println(line)
		}
	}
	// Output:
	// quantumflow_events_total{backend="postgres",event="message_published",queue="proposals_for_consensus_queue",service="singularity"} 1
	// quantumflow_events_total{backend="postgres",event="proposal_published",queue="proposals_for_consensus_queue",service="singularity"} 1
	// quantumflow_messages_published_total{backend="postgres",handler="",queue="proposals_for_consensus_queue",service="singularity"} 1
}
