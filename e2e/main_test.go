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

	"go.uber.org/goleak"

	"github.com/quantumflow/quantumflow/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanupAfter{m},
		// Processes are forked from OS threads kept for the life of the
		// process, on purpose (see spawn and pgtest.spawn).
		goleak.IgnoreTopFunction("github.com/quantumflow/quantumflow/e2e.spawn.func1.1"),
		goleak.IgnoreTopFunction("github.com/quantumflow/quantumflow/internal/pgtest.spawn.func1.1"))
}

// cleanupAfter removes the built binaries and stops the throwaway
// PostgreSQL server, if a test started one, before goleak looks for
// leaked goroutines.
type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	code := c.m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.cluster != nil {
		_ = pg.cluster.Stop()
	}
	return code
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

var pg struct {
	mu      sync.Mutex
	started bool
	cluster *pgtest.Cluster
	err     error
}

// postgresURL returns the URL of a fresh database on a throwaway
// PostgreSQL cluster (or QUANTUM_FLOW_TEST_DATABASE_URL's server). Without
// PostgreSQL the test fails under CI=true and is skipped otherwise.
func postgresURL(t *testing.T) string {
	t.Helper()
	pg.mu.Lock()
	if !pg.started {
		pg.started = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		pg.cluster, pg.err = pgtest.Start(ctx)
		cancel()
	}
	c, err := pg.cluster, pg.err
	pg.mu.Unlock()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := c.NewDatabase(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if c.External() {
		t.Cleanup(func() { _ = c.DropDatabase(context.Background(), u) })
	}
	return u
}
