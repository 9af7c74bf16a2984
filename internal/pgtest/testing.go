package pgtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	sharedMu   sync.Mutex
)

// Main runs a test binary's tests and stops the shared cluster afterwards.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The cluster starts lazily on the first call to Database or Shared, so a
// binary whose tests are all skipped or filtered out (or a child process
// re-executed from a test) starts no server.
func Main(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		_ = shared.Stop()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// MainCheckingLeaks is Main with goleak's check of leaked goroutines after
// the tests, once the shared cluster is stopped (goroutines of the
// cluster's own forking thread are expected). after, when not nil, runs
// before the check (to remove what the tests built, say).
func MainCheckingLeaks(m *testing.M, after func(), opts ...goleak.Option) {
	opts = append(opts, goleak.IgnoreTopFunction("github.com/quantumflow/quantumflow/internal/pgtest.Spawn.func1.1"))
	goleak.VerifyTestMain(stopAfter{m, after}, opts...)
}

// stopAfter runs the tests, then after and stops the shared cluster.
type stopAfter struct {
	m     *testing.M
	after func()
}

func (s stopAfter) Run() int {
	code := s.m.Run()
	if s.after != nil {
		s.after()
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		_ = shared.Stop()
	}
	return code
}

// Shared returns the test binary's cluster, starting it on first use. When
// PostgreSQL is unavailable the test fails under CI=true and is skipped
// otherwise.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := Start(ctx)
		sharedMu.Lock()
		shared, sharedErr = c, err
		sharedMu.Unlock()
	})
	if sharedErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL is required under CI: %v", sharedErr)
		}
		tb.Skipf("skipping: %v (install Debian's postgresql package or set %s)", sharedErr, EnvDatabaseURL)
	}
	return shared
}

// Database returns the URL of a fresh, empty database on the shared
// cluster. On an external server the database is dropped when the test
// ends; a throwaway cluster is removed whole by Main.
func Database(tb testing.TB) string {
	tb.Helper()
	c := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := c.NewDatabase(ctx)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if c.External() {
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.DropDatabase(ctx, u); err != nil {
				tb.Logf("pgtest: drop database: %v", err)
			}
		})
	}
	return u
}
