package nats_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/nats"
	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
)

// The test binary doubles as the child processes of the crash tests: with
// QF_NATS_CHILD set it runs that role instead of the tests.
const childEnv = "QF_NATS_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "consumer":
		os.Exit(childConsumer())
	case "server":
		os.Exit(childServer())
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", os.Getenv(childEnv))
		os.Exit(2)
	}
}

// childConsumer consumes QF_NATS_QUEUE from QF_NATS_URL with 8
// subscriptions and reports each message on stdout: "acking ID" before
// acking it, "held ID" for the message each of the first three
// subscriptions keeps unsettled once it has acked five. It runs until
// killed.
func childConsumer() int {
	b, err := pubsub.Open(context.Background(), os.Getenv("QF_NATS_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	queue := os.Getenv("QF_NATS_QUEUE")
	for i := range 8 {
		ch, err := b.Subscriber().Subscribe(context.Background(), queue)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			acked := 0
			for msg := range ch {
				if i < 3 && acked == 5 {
					// One write per line: lines from several goroutines
					// never interleave on a pipe.
					fmt.Fprintf(os.Stdout, "held %s\n", msg.UUID)
					select {} // never settled: the process dies holding it
				}
				// Reported before the ack: killed after the ack and before
				// the report, the message would be gone from its queue and
				// unaccounted for. Reported and not acked, it comes back.
				fmt.Fprintf(os.Stdout, "acking %s\n", msg.UUID)
				msg.Ack()
				acked++
			}
		}()
	}
	select {}
}

// childServer runs an embedded server on QF_NATS_DIR and QF_NATS_PORT,
// prints "ready URL" and runs until killed.
func childServer() int {
	port, _ := strconv.Atoi(os.Getenv("QF_NATS_PORT"))
	srv, err := embedded.Start(context.Background(), embedded.Options{DataDir: os.Getenv("QF_NATS_DIR"), Port: port})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stdout, "ready %s\n", srv.ClientURL())
	select {}
}

// child is a running child process of the test binary.
type child struct {
	cmd   *exec.Cmd
	lines chan string // stdout, line by line; closed at EOF (the child dead)
}

// startChild runs the test binary in a child role with extra environment.
func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	// A pipe of our own, not cmd.StdoutPipe: Wait closes that one's read
	// end as soon as the child has exited, and kill waits right after the
	// SIGKILL, so the lines a killed child wrote last could be lost unread
	// (TestConsumerKilledMidBatch then missed an "acking" line whose ack
	// the server had, and counted the message as lost). This one is read
	// to EOF, which comes when the child is dead.
	out, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = w
	err = cmd.Start()
	_ = w.Close() // the child has its own copy
	if err != nil {
		_ = out.Close()
	}
	require.NoError(t, err)
	c := &child{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		defer close(c.lines)
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// kill sends SIGKILL and reaps the process. It is idempotent.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// startServerChild runs an embedded server in a child process and returns
// it with its URL.
func startServerChild(t *testing.T, dir string, port int) (*child, string) {
	t.Helper()
	c := startChild(t, "server", "QF_NATS_DIR="+dir, "QF_NATS_PORT="+strconv.Itoa(port))
	select {
	case line, ok := <-c.lines:
		require.True(t, ok, "server child exited before it was ready")
		url, found := strings.CutPrefix(line, "ready ")
		require.True(t, found, "server child said %q", line)
		return c, url
	case <-time.After(30 * time.Second):
		t.Fatal("server child not ready within 30s")
		return nil, ""
	}
}

// openBackend opens a backend on url and closes it when t ends.
func openBackend(t *testing.T, url string) *pubsub.Backend {
	t.Helper()
	b, err := pubsub.Open(context.Background(), url, pubsub.WithLogger(testLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// testLogger logs to the test's output when QF_TEST_LOG is set, else
// nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("QF_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// idSet is a set of message ids safe for concurrent use.
type idSet struct {
	mu  sync.Mutex
	ids map[string]int
}

func newIDSet() *idSet { return &idSet{ids: map[string]int{}} }

func (s *idSet) add(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.ids[id]++
	}
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (s *idSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id] > 0
}

// missing returns the ids of s that none of others has.
func (s *idSet) missing(others ...*idSet) []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.ids))
	for id := range s.ids {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	var out []string
	for _, id := range ids {
		found := false
		for _, o := range others {
			if o.has(id) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, id)
		}
	}
	return out
}

// newMessages returns n messages with fresh ids.
func newMessages(n int, payload string) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = message.NewMessage(uuid.NewString(), []byte(payload))
	}
	return out
}

func idsOf(msgs []*message.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UUID
	}
	return out
}

// consumeInto runs n subscriptions on queue that ack every message and
// record it in received, until ctx is done. The returned function waits
// for them to end.
func consumeInto(t *testing.T, ctx context.Context, b *pubsub.Backend, queue string, n int, received *idSet, attempts map[string]int, attemptsMu *sync.Mutex) func() {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		ch, err := b.Subscriber().Subscribe(ctx, queue)
		require.NoError(t, err)
		wg.Go(func() {
			for msg := range ch {
				if attempts != nil {
					attemptsMu.Lock()
					attempts[msg.UUID] = pubsub.DeliveryOf(msg).Attempt
					attemptsMu.Unlock()
				}
				received.add(msg.UUID)
				msg.Ack()
			}
		})
	}
	return wg.Wait
}

// waitAll waits until every id of want is in one of got, failing after
// timeout with how many are missing.
func waitAll(t *testing.T, want *idSet, timeout time.Duration, got ...*idSet) {
	t.Helper()
	if missing := waitMissing(want, timeout, got...); len(missing) > 0 {
		t.Fatalf("%d of %d messages never received (e.g. %s)", len(missing), want.len(), missing[0])
	}
}

// waitMissing waits until every id of want is in one of got, or timeout
// passed, and returns the ids still missing.
func waitMissing(want *idSet, timeout time.Duration, got ...*idSet) []string {
	deadline := time.Now().Add(timeout)
	for {
		missing := want.missing(got...)
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(20 * time.Millisecond)
	}
}
