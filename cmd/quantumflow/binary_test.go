package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinaryNeverShowsUnparseableURL runs the built binary, as an operator
// does, with URLs of the hostile-input battery that do not parse: exit 2,
// and neither stdout nor stderr shows the secret. (cmd/cli's
// TestUnparseableURLNeverShown runs every way in; this checks that the
// binary is wired to it.)
func TestBinaryNeverShowsUnparseableURL(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "quantumflow")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	file := filepath.Join(t.TempDir(), "qf.yaml")
	require.NoError(t, os.WriteFile(file, []byte("singularity:\n  database_url: 'postgres:S3CRET@127.0.0.1/db'\n"), 0o600))
	cases := []struct {
		args []string
		env  string
	}{
		{args: []string{"queues", "--url", "postgres://us er:S3CRET@127.0.0.1/db"}},
		{args: []string{"queues", "--json", "--url", "nats://S3CRET@[::1"}},
		{args: []string{"config", "check"}, env: "QUANTUM_FLOW_DATABASE_URL=host=127.0.0.1 password=S3CRET"},
		{args: []string{"publish", "proposals_for_consensus_queue", "--payload", "{}", "--json"}, env: "QUANTUM_FLOW_MESSAGING_URL=postgres://user:S3/CRET@127.0.0.1/db"},
		{args: []string{"config", "show", "--config", file}},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = append(os.Environ(), "QUANTUM_FLOW_DATABASE_URL=", "QUANTUM_FLOW_MESSAGING_URL=")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "%v: %v: %s", c.args, err, out)
		require.Equal(t, 2, exit.ExitCode(), "%v: %s", c.args, out)
		require.NotContains(t, string(out), "S3CRET", c.args)
		require.True(t, strings.Contains(string(out), "not a valid URL"), "%v: %s", c.args, out)
	}
}
