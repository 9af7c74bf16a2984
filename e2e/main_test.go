//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quantumflow/quantumflow/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.MainCheckingLeaks(m, func() {
		if bins.dir != "" {
			_ = os.RemoveAll(bins.dir)
		}
	})
}

// binaries are the programs the test runs, built once per test binary.
type binaries struct {
	CentralCloud, Singularity, NATSServer string
}

var bins struct {
	once sync.Once
	dir  string
	b    binaries
	err  error
}

// build builds examples/centralcloud, examples/singularity and
// nats-server (the module's own dependency, so the version the backend is
// tested against) into a temporary directory, once.
func build(t *testing.T) binaries {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "qf-e2e-bin-")
		if bins.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, args := range [][]string{
			{"build", "-o", bins.dir + string(filepath.Separator), "./examples/centralcloud", "./examples/singularity"},
			{"build", "-o", filepath.Join(bins.dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
		} {
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = ".." // the module root
			if out, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go %v: %w\n%s", args, err, out)
				return
			}
		}
		bins.b = binaries{
			CentralCloud: filepath.Join(bins.dir, "centralcloud"),
			Singularity:  filepath.Join(bins.dir, "singularity"),
			NATSServer:   filepath.Join(bins.dir, "nats-server"),
		}
	})
	if bins.err != nil {
		t.Fatalf("building the services: %v", bins.err)
	}
	return bins.b
}

// postgresURL returns the URL of a fresh database on the shared throwaway
// PostgreSQL server.
func postgresURL(t *testing.T) string { return pgtest.Database(t) }
