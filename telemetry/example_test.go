package telemetry_test

import (
	"fmt"

	"github.com/quantumflow/quantumflow/telemetry"
)

// The seed's monitoring snippet: attach one handler to every QuantumFlow
// event.
func Example() {
	bus := telemetry.NewBus()
	_ = bus.Attach("quantum_flow_monitor", telemetry.Event{"evolution", "QuantumFlow", "*"},
		func(e telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
			fmt.Println(e, m["count"], md["queue"])
		})

	bus.Execute(telemetry.ProposalPublished,
		telemetry.Measurements{"count": 1}, telemetry.Metadata{"queue": "proposals_for_consensus_queue"})
	bus.Execute(telemetry.Event{"other", "event"}, nil, nil) // not under the prefix
	bus.Detach("quantum_flow_monitor")
	bus.Execute(telemetry.ProposalPublished, nil, nil) // nobody listens
	// Output:
	// evolution.QuantumFlow.proposal_published 1 proposals_for_consensus_queue
}
