package topology_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quantumflow/quantumflow/topology"
)

func ExampleLoad() {
	env := map[string]string{
		"QUANTUM_FLOW_PROFILE":           "large",
		"QUANTUM_FLOW_PROPOSALS_WORKERS": "8",
	}
	cfg, err := topology.Load(topology.LoadOptions{
		Service:   topology.CentralCloud,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range cfg.Consumers {
		fmt.Println(c.Queue, c.Workers, c.Handler)
	}
	// Output:
	// proposals_for_consensus_queue 8 handle_proposal_for_consensus
	// metrics_to_guardian_queue 4 handle_execution_metrics
	// patterns_for_aggregator_queue 3 handle_pattern_discovered
}

func ExampleLoad_invalid() {
	env := map[string]string{"QUANTUM_FLOW_PROPOSALS_WORKERS": "abc"}
	_, err := topology.Load(topology.LoadOptions{
		Service:   topology.Singularity,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, topology.ErrInvalidConfig))
	// Output:
	// invalid singularity configuration: QUANTUM_FLOW_PROPOSALS_WORKERS="abc": not an integer
	// true
}

func ExampleCheckPair() {
	load := func(service string, env map[string]string) topology.ServiceConfig {
		cfg, err := topology.Load(topology.LoadOptions{
			Service:   service,
			LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
		if err != nil {
			panic(err)
		}
		return cfg
	}
	// The seed's defaults: each service its own database.
	err := topology.CheckPair(load(topology.Singularity, nil), load(topology.CentralCloud, nil))
	fmt.Println(errors.Is(err, topology.ErrInvalidConfig))
	fmt.Println(strings.Split(err.Error(), "\n")[1])

	// One messaging backend for both.
	env := map[string]string{"QUANTUM_FLOW_MESSAGING_URL": "postgres://queues:secret@db.internal/quantumflow"}
	fmt.Println(topology.CheckPair(load(topology.Singularity, env), load(topology.CentralCloud, env)))
	// Output:
	// true
	//   proposals_for_consensus_queue: singularity publishes to "postgresql://localhost/singularity" and centralcloud consumes from "postgresql://localhost/central_services": not one messaging backend (set messaging_url or QUANTUM_FLOW_MESSAGING_URL alike for both services)
	// <nil>
}
