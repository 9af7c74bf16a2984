package demo_test

import (
	"context"
	"fmt"
	"io"

	"github.com/quantumflow/quantumflow/demo"
)

// ExampleRun runs the topology on the in-memory backend with one
// Singularity instance for 14 rounds. Some messages fail on purpose: a
// flaky one is consumed on its retry, a poison proposal is dead-lettered
// after its three retries, a malformed pattern at once. None is lost.
func ExampleRun() {
	sum, err := demo.Run(context.Background(), demo.Options{URL: "mem://example", Instances: 1, Rounds: 14}, io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("settled: %t, lost: %d\n", sum.Settled, sum.Lost)
	for _, q := range sum.Queues {
		fmt.Printf("%s: %d published, %d consumed, %d retried, %d dead-lettered\n", q.Queue, q.Published, q.Consumed, q.Retried, q.DeadLettered)
	}
	// Output:
	// settled: true, lost: 0
	// proposals_for_consensus_queue: 14 published, 13 consumed, 5 retried, 1 dead-lettered
	// consensus_results_queue: 13 published, 13 consumed, 0 retried, 0 dead-lettered
	// metrics_to_guardian_queue: 14 published, 14 consumed, 2 retried, 0 dead-lettered
	// patterns_for_aggregator_queue: 8 published, 7 consumed, 0 retried, 1 dead-lettered
	// rollback_triggers_queue: 2 published, 2 consumed, 0 retried, 0 dead-lettered
	// guardian_safety_profiles_queue: 2 published, 2 consumed, 0 retried, 0 dead-lettered
}
