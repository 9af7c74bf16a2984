package topology

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's environment variable table")

// TestREADMEEnvTable keeps the README's table of environment variables in
// step with EnvTable. Run with -update-readme to regenerate it.
func TestREADMEEnvTable(t *testing.T) {
	const path = "../README.md"
	const begin, end = "<!-- env-table:begin", "<!-- env-table:end -->"
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(raw)
	i := strings.Index(readme, begin)
	require.GreaterOrEqual(t, i, 0, "README has no %q marker", begin)
	i += strings.Index(readme[i:], "\n") + 1
	j := strings.Index(readme, end)
	require.GreaterOrEqual(t, j, i, "README has no %q marker after the begin marker", end)
	want := EnvTableMarkdown()
	if !strings.HasSuffix(want, "\n") {
		want += "\n"
	}
	if *updateREADME {
		require.NoError(t, os.WriteFile(path, []byte(readme[:i]+want+readme[j:]), 0o644))
		return
	}
	require.Equal(t, want, readme[i:j], "README env table is stale: go test ./topology -run TestREADMEEnvTable -update-readme")
}
