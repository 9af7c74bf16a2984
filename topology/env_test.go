package topology

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnvTable(t *testing.T) {
	t.Parallel()
	rows := EnvTable()
	require.Len(t, rows, 28)
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_DATABASE_URL", Service: Singularity, Setting: "database_url", Default: "postgresql://localhost/singularity"}, rows[0])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_MESSAGING_URL", Service: Singularity, Setting: "messaging_url", Default: "(database_url)"}, rows[1])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_INSTANCE_ID", Service: Singularity, Setting: "instance_id", Default: "(host name)"}, rows[2])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_INSTANCE_TTL", Service: Singularity, Setting: "instance_ttl", Default: "24h"}, rows[3])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_BROADCAST_RETENTION", Service: Singularity, Setting: "broadcast_retention", Default: "168h"}, rows[4])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_PROPOSALS_WORKERS", Service: Singularity, Setting: "workers", Side: "producer", Entry: "proposals_for_consensus", Queue: ProposalsQueue, Default: "2"}, rows[5])

	byKey := map[string]EnvVar{}
	for _, r := range rows {
		byKey[r.Service+" "+r.Name] = r
	}
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_PROPOSALS_WORKERS", Service: CentralCloud, Setting: "workers", Side: "consumer", Entry: "proposals", Queue: ProposalsQueue, Default: "3"}, byKey["centralcloud QUANTUM_FLOW_PROPOSALS_WORKERS"])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_PROFILE_WORKERS", Service: CentralCloud, Setting: "workers", Side: "producer", Entry: "safety_profiles", Queue: SafetyProfilesQueue, Default: "1"}, byKey["centralcloud QUANTUM_FLOW_PROFILE_WORKERS"])
	require.Equal(t, EnvVar{Name: "QUANTUM_FLOW_RETRY_DELAY_MS", Service: CentralCloud, Setting: "retry_delay_ms", Default: "1000"}, byKey["centralcloud QUANTUM_FLOW_RETRY_DELAY_MS"])
	_, ok := byKey["centralcloud QUANTUM_FLOW_CONSENSUS_WORKERS"]
	require.False(t, ok, "CentralCloud does not read QUANTUM_FLOW_CONSENSUS_WORKERS in the seed")
	_, ok = byKey["singularity QUANTUM_FLOW_PROFILE_WORKERS"]
	require.False(t, ok)

	md := EnvTableMarkdown()
	require.Len(t, strings.Split(strings.TrimSpace(md), "\n"), 30)
	require.Contains(t, md, "| QUANTUM_FLOW_INSTANCE_ID | centralcloud | instance_id | - | - | (host name) |\n")
	require.Contains(t, md, "| QUANTUM_FLOW_BROADCAST_RETENTION | centralcloud | broadcast_retention | - | - | 168h |\n")
	require.Contains(t, md, "| QUANTUM_FLOW_MESSAGING_URL | centralcloud | messaging_url | - | - | (database_url) |\n")
	require.Contains(t, md, "| QUANTUM_FLOW_SAFETY_WORKERS | singularity | workers | consumer | safety_profiles (guardian_safety_profiles_queue) | 1 |\n")
}

// TestDocTables keeps the tables in the package documentation in step
// with the code that the CLI prints them from.
func TestDocTables(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	for name, table := range map[string]string{"EnvTableText": EnvTableText(), "ProfileTableText": ProfileTableText()} {
		var block []string
		for _, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
			block = append(block, strings.TrimRight("//\t"+line, " "))
		}
		require.Contains(t, string(doc), strings.Join(block, "\n")+"\n", "doc.go is out of date with %s", name)
	}
}
