package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
)

// benchCommand answers `quantumflow bench`, which was a command before the
// benchmark became a binary of its own, with the command that runs it now.
// The operator tool does not link the benchmark: it starts throwaway
// PostgreSQL clusters and links the baselines' client libraries.
func (a *app) benchCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "bench",
		Short:              "Moved: go run ./cmd/quantumflow-bench",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: a.runE(func(_ context.Context, _ *cobra.Command, args []string) error {
			run := strings.Join(append([]string{"go run ./cmd/quantumflow-bench"}, args...), " ")
			return usageErrorf("the benchmark is the binary quantumflow-bench, so that this tool does not link the throwaway PostgreSQL clusters it starts: %s", run)
		}),
	}
}
