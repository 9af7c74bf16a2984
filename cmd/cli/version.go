package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Version is the tool's version. Release builds set it with
// -ldflags "-X github.com/quantumflow/quantumflow/cmd/cli.Version=v1.2.3";
// otherwise the module version or VCS revision from the build info is shown.
var Version = ""

func version() (ver, rev string) {
	ver, rev = Version, ""
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return cmpOr(ver, "devel"), rev
	}
	if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" && rev != "" {
				rev += "+dirty"
			}
		}
	}
	return cmpOr(ver, "devel"), rev
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, Go version and compiled-in backends",
		Args:  noArgs,
		RunE: a.runE(func(_ context.Context, cmd *cobra.Command, _ []string) error {
			ver, rev := version()
			out := cmd.OutOrStdout()
			if a.jsonOut {
				return writeJSONLine(out, map[string]any{"version": ver, "revision": rev, "go": runtime.Version(), "schemes": pubsub.Schemes()})
			}
			line := "quantumflow " + ver
			if rev != "" {
				line += " (" + rev + ")"
			}
			_, err := fmt.Fprintf(out, "%s %s schemes=%v\n", line, runtime.Version(), pubsub.Schemes())
			return err
		}),
	}
}
