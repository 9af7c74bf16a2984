//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/nats"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/journal"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// reportEnv names a file the accounting tables are appended to
// (scripts/e2e.sh prints it).
const reportEnv = "QUANTUM_FLOW_E2E_REPORT"

// TestEndToEnd runs CentralCloud and three Singularity instances as OS
// processes on PostgreSQL and on a three-node NATS cluster, kills and
// restarts each of them once (and one NATS node), and accounts for every
// message. See the package documentation.
func TestEndToEnd(t *testing.T) {
	bins := build(t)

	t.Run("PostgreSQL", func(t *testing.T) {
		u, err := url.Parse(postgresURL(t))
		require.NoError(t, err)
		q := u.Query()
		// A killed service's leased messages come back within seconds.
		q.Set("lease", "5s")
		u.RawQuery = q.Encode()
		run(newGroup(t), bins, u.String(), nil)
	})

	t.Run("NATS", func(t *testing.T) {
		g := newGroup(t)
		cluster := startNATSCluster(g, bins.NATSServer)
		run(g, bins, cluster.URL(), cluster)
	})
}

// scenario is one run of the services on one backend.
type scenario struct {
	t        *testing.T
	g        *group
	admin    *pubsub.Backend
	journals *journals
	cc       *process
	sgs      []*process
	services []*process
	ids      map[*process]string // instance ids
	// rounds is how many rounds an instance sends after its restart.
	rounds int
	// step is how many messages the services consume between two faults.
	step     int
	consumed int // at the last fault
	began    time.Time
}

const interval = 100 * time.Millisecond

// slowWait is the wait between publish and consumption that the report
// points out: far longer than a restart takes.
const slowWait = 10 * time.Second

func run(g *group, bins binaries, backendURL string, cluster *natsCluster) {
	t := g.t
	ctx := context.Background()
	s := &scenario{t: t, g: g, ids: map[*process]string{}, rounds: 100, step: 60, began: time.Now()}
	if testing.Short() {
		s.rounds, s.step = 40, 30
	}
	admin, err := pubsub.Open(ctx, backendURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	s.admin = admin
	// As `quantumflow init` does before the services first start.
	require.NoError(t, admin.Init(ctx))

	s.journals = newJournals(workDir(t, "journals"), "cc", "s1", "s2", "s3")
	env := environ(
		"QUANTUM_FLOW_MESSAGING_URL="+backendURL,
		// Poison messages become dead letters within a second.
		"QUANTUM_FLOW_RETRY_DELAY_MS=100",
	)
	s.cc = g.add("centralcloud", bins.CentralCloud,
		[]string{"-journal", s.journals.path("cc")}, append(slices.Clone(env), "QUANTUM_FLOW_INSTANCE_ID=cc"))
	s.ids[s.cc] = "cc"
	s.services = append(s.services, s.cc)
	for _, id := range []string{"s1", "s2", "s3"} {
		p := g.add(id, bins.Singularity, []string{
			"-instance", id, "-interval", interval.String(), "-journal", s.journals.path(id),
		}, env)
		s.ids[p] = id
		s.sgs = append(s.sgs, p)
		s.services = append(s.services, p)
	}
	// The instances send rounds until they are killed, so that traffic
	// flows through every fault; after its restart each sends s.rounds.
	for _, p := range s.services {
		p.start()
	}
	for _, p := range s.services {
		s.waitRegistered(p)
	}
	s.logf("services running")

	// Faults, each once the services have made progress since the last.
	rounds := []string{"-rounds", strconv.Itoa(s.rounds)}
	s.restart(s.cc)
	s.restart(s.sgs[0], rounds...)
	if cluster != nil {
		s.waitProgress()
		n := cluster.leader()
		s.logf("SIGKILL NATS node %s (the meta leader)", n.name)
		cluster.kill(n)
		s.logf("the NATS cluster has a meta leader on two nodes")
		s.waitProgress() // the services work on two nodes
		cluster.restart(n)
		s.logf("NATS node %s back, the cluster whole", n.name)
	}
	s.restart(s.sgs[1], rounds...)
	s.restart(s.sgs[2], rounds...)

	g.waitUntil(time.Duration(s.rounds)*interval*3+time.Minute, "every instance to send its rounds", func() (bool, string) {
		var busy []string
		for _, p := range s.sgs {
			if !p.logged("rounds sent") {
				busy = append(busy, s.ids[p])
			}
		}
		return len(busy) == 0, "still sending: " + strings.Join(busy, ", ")
	})
	s.logf("every instance sent its rounds")

	var last accounting
	// Listing the dead letters is a read of a whole stream or table: not
	// every 100ms.
	g.waitEvery(500*time.Millisecond, 90*time.Second, "every message published to be consumed or dead-lettered", func() (bool, string) {
		a, err := s.account(ctx, false)
		if err != nil {
			return false, err.Error()
		}
		last = a
		return a.Total.Lost == 0, fmt.Sprintf("%d of %d outstanding\n%s", a.Total.Lost, a.Total.Published, a.table())
	})
	s.logf("every message consumed or dead-lettered (%d published)", last.Total.Published)

	require.NoError(t, g.unexpectedExit())
	s.stopAll()
	a, err := s.account(ctx, true)
	require.NoError(t, err)
	s.report(a)
}

// logf logs with the time since the scenario began and the wall clock
// (UTC, as the services log), to read beside the services' logs.
func (s *scenario) logf(format string, args ...any) {
	s.t.Helper()
	now := time.Now()
	s.t.Logf("%6.1fs %s "+format, append([]any{now.Sub(s.began).Seconds(), now.UTC().Format("15:04:05.000")}, args...)...)
}

// waitRegistered waits until p's current run is in the instance registry.
func (s *scenario) waitRegistered(p *process) {
	s.t.Helper()
	service := topology.Singularity
	if p == s.cc {
		service = topology.CentralCloud
	}
	pid := p.pid()
	s.g.waitUntil(time.Minute, fmt.Sprintf("%s (pid %d) to register", p.name, pid), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		all, err := s.admin.Instances(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, i := range all {
			if i.Service == service && i.ID == s.ids[p] && i.PID == pid {
				return true, ""
			}
		}
		return false, fmt.Sprintf("registry: %v", all)
	})
}

// waitProgress waits until the services have consumed step more messages
// since the last fault.
func (s *scenario) waitProgress() {
	s.t.Helper()
	want := s.consumed + s.step
	s.g.waitUntil(time.Minute, fmt.Sprintf("%d messages consumed", want), func() (bool, string) {
		n, err := s.journals.count(journal.Consumed)
		if err != nil {
			return false, err.Error()
		}
		s.consumed = n
		return n >= want, fmt.Sprintf("%d consumed", n)
	})
}

// restart SIGKILLs a service process once the services made progress and
// starts it again under its instance id, with extra arguments.
func (s *scenario) restart(p *process, extra ...string) {
	s.t.Helper()
	s.waitProgress()
	s.logf("SIGKILL %s (pid %d)", p.name, p.pid())
	p.kill()
	p.start(extra...)
	s.waitRegistered(p)
	s.logf("%s back (pid %d)", p.name, p.pid())
}

// stopAll SIGTERMs the services, which must shut down gracefully.
func (s *scenario) stopAll() {
	s.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(s.services))
	for i, p := range s.services {
		wg.Go(func() { errs[i] = p.signal(syscall.SIGTERM, 45*time.Second) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(s.t, err, "%s: exit after SIGTERM", s.services[i].name)
	}
	s.logf("services stopped")
}

// account reads the journals and the backend's dead letters and, with
// pending, what waits in the queues.
func (s *scenario) account(ctx context.Context, pending bool) (accounting, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	entries, cut, err := s.journals.read()
	if err != nil {
		return accounting{}, err
	}
	dls, err := s.admin.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Limit: 1_000_000})
	if err != nil {
		return accounting{}, err
	}
	var waiting []pubsub.PendingMessage
	if pending {
		queues := map[string]bool{}
		for _, e := range entries {
			queues[e.Queue] = true
		}
		for q := range queues {
			ps, err := s.admin.ListPending(ctx, q, 1_000_000)
			if err != nil {
				return accounting{}, fmt.Errorf("pending of %s: %w", q, err)
			}
			waiting = append(waiting, ps...)
		}
	}
	a := account(entries, dls, waiting)
	a.CutLines = cut
	return a, nil
}

// report prints the accounting and checks it: nothing lost, nothing
// misrouted, and traffic on every queue and instance.
func (s *scenario) report(a accounting) {
	t := s.t
	table := a.table()
	t.Logf("accounting after %s:\n%s", time.Since(s.began).Round(time.Second), table)
	if path := os.Getenv(reportEnv); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		require.NoError(t, err)
		fmt.Fprintf(f, "%s (%s)\n%s\n", t.Name(), time.Since(s.began).Round(time.Second), table)
		require.NoError(t, f.Close())
	}
	if len(a.Duplicates) > 0 {
		var lines []string
		for k, n := range a.Duplicates {
			lines = append(lines, fmt.Sprintf("%s consumed %d times", k, n))
		}
		slices.Sort(lines)
		t.Logf("%d duplicates (at-least-once delivery around the kills):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if len(a.Unjournaled) > 0 {
		t.Logf("%d consumed or dead-lettered without a journaled publish (the latest safety profile replayed to a new instance, a publish that failed after the backend had stored the message, or a journal line lost to a SIGKILL): %v",
			len(a.Unjournaled), a.Unjournaled)
	}
	for _, r := range a.Rows {
		if r.MaxWait > slowWait {
			t.Logf("%s: a message waited %s from its publish to its consumption", r.Queue, r.MaxWait.Round(time.Millisecond))
		}
	}
	if a.CutLines > 0 {
		t.Logf("%d journal lines cut short by a SIGKILL", a.CutLines)
	}

	require.Zero(t, a.Total.Lost, "lost: %v", a.Lost)
	require.Zero(t, a.Total.Misrouted, "misrouted:\n%s", strings.Join(a.Misrouted, "\n"))
	require.Zero(t, a.Total.Pending, "every message was settled before the services stopped")
	require.Positive(t, a.Total.DeadLettered, "poison proposals and malformed patterns end as dead letters")
	got := map[string]int{}
	for _, r := range a.Rows {
		got[r.Queue] = r.Published
	}
	for _, q := range []string{topology.ProposalsQueue, topology.MetricsQueue, topology.PatternsQueue} {
		require.Positive(t, got[q], "published to %s", q)
	}
	for _, q := range []string{topology.ConsensusQueue, topology.RollbackQueue, topology.SafetyProfilesQueue} {
		for _, id := range []string{"s1", "s2", "s3"} {
			require.Positive(t, got[pubsub.InstanceQueue(q, id)], "published to %s's copy of %s", id, q)
		}
	}
}
