package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoTestHelpersLinked keeps the operator binary free of the
// throwaway-cluster helpers and the benchmark harness: they start
// PostgreSQL servers and link the baselines' client libraries, and live in
// cmd/quantumflow-bench (see the README).
func TestNoTestHelpersLinked(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/quantumflow/quantumflow/internal/pgtest",
			"github.com/quantumflow/quantumflow/internal/testutil",
			"github.com/quantumflow/quantumflow/bench",
		} {
			require.NotEqual(t, banned, pkg, "quantumflow links %s", banned)
		}
		require.False(t, strings.HasPrefix(pkg, "github.com/ThreeDotsLabs/watermill-sql/"), "quantumflow links the watermill-sql baseline: %s", pkg)
		require.NotEqual(t, "testing", pkg, "quantumflow links package testing")
	}
}
