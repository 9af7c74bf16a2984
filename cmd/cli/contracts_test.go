package cli_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/cmd/cli"
	"github.com/quantumflow/quantumflow/topology"
)

// TestPublishChecksContracts: a payload a topology queue's contract
// refuses exits 2 naming the queue and the field, and nothing is stored;
// --raw publishes it as is.
func TestPublishChecksContracts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, cli.ExitOK, b.run(t, "init").code)
	for _, c := range []struct {
		name  string
		queue string
		args  []string
		want  string
	}{
		{"MalformedJSON", topology.ProposalsQueue, []string{"--payload", `{"id": `}, "queue proposals_for_consensus_queue: --payload is not valid JSON (unexpected end of JSON input)"},
		{"NotAnObject", topology.ProposalsQueue, []string{"--payload", `"p1"`}, "quantumflow.proposal/v1: want a JSON object, got string"},
		{"WrongType", topology.ProposalsQueue, []string{"--payload", `{"id":"p1","instance":"s1","change":"x","risk":"high"}`}, `field "risk": want a number, got string`},
		{"MissingField", topology.MetricsQueue, []string{"--payload", `{"id":"m1","error_rate":0.1}`}, `queue metrics_to_guardian_queue: quantumflow.execution_metrics/v1: field "instance": is required`},
		{"OutOfRange", topology.SafetyProfilesQueue, []string{"--payload", `{"id":"sp1","version":1,"max_risk":2}`}, `field "max_risk": must be between 0 and 1, got 2`},
		{"NewerSchemaVersion", topology.PatternsQueue, []string{"--payload", `{"schema_version":7,"id":"pt1","instance":"s1","name":"n"}`}, `field "schema_version": version 7 is newer than the newest this consumer knows (1)`},
		{"NewerSchemaMetadata", topology.PatternsQueue, []string{"--payload", `{"id":"pt1","instance":"s1","name":"n"}`, "--metadata", "quantumflow_schema=quantumflow.pattern_discovered/v2"}, `field "quantumflow_schema": version 2 is newer`},
		{"OtherContract", topology.PatternsQueue, []string{"--payload", `{"id":"pt1","instance":"s1","name":"n"}`, "--metadata", "quantumflow_schema=quantumflow.proposal/v1"}, `this queue's contract is quantumflow.pattern_discovered`},
		{"InstanceQueue", topology.ConsensusQueue + "@s1", []string{"--payload", `{"id":"r1","proposal_id":"p1","instance":"s1","decision":"maybe"}`}, `queue consensus_results_queue: quantumflow.consensus_result/v1: field "decision": must be "approved" or "rejected", got "maybe"`},
		{"Addressed", topology.RollbackQueue, []string{"--payload", `{"id":"rb1","instance":"s1"}`, "--to", "s1"}, `field "reason": is required`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := b.run(t, append([]string{"publish", c.queue}, c.args...)...)
			require.Equal(t, cli.ExitUsage, r.code, r.stderr)
			require.Contains(t, r.stderr, c.want)
			require.Empty(t, r.stdout, "nothing published")
		})
	}
	infos, err := b.backend.ListQueues(context.Background())
	require.NoError(t, err)
	for _, qi := range infos {
		st, err := b.backend.Stats(context.Background(), qi.Name)
		require.NoError(t, err)
		require.Zero(t, st.Pending+st.Scheduled+st.InFlight, "nothing stored in %s", qi.Name)
	}

	r := b.run(t, "publish", topology.ProposalsQueue, "--payload", `{"id":"p1","instance":"s1","change":"x","risk":"high"}`, "--raw")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = b.run(t, "publish", "no_contract_queue", "--payload", `[1]`, "--json")
	require.Equal(t, cli.ExitUsage, r.code, "an unknown queue is still unknown: %s", r.stderr)
	r = b.run(t, "publish", topology.RollbackQueue, "--payload", `{"id":"rb1","instance":"s1","reason":"error rate","error_rate":0.8}`, "--to", "s1")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
}
