package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/pubsub/pubsubtest"
)

// Environment of the child consumer process of TestKilledConsumerLosesNothing.
const (
	envChild      = "QF_PG_TEST_CHILD"
	envChildURL   = "QF_PG_TEST_CHILD_URL"
	envChildQueue = "QF_PG_TEST_CHILD_QUEUE"
	envChildAcks  = "QF_PG_TEST_CHILD_ACKS"
)

// runChild runs this test binary as the child consumer when the
// environment asks for it (it never returns then: the test kills it), and
// reports false otherwise.
func runChild() bool {
	var err error
	switch os.Getenv(envChild) {
	case "consumer":
		err = childConsumer()
	case "init":
		err = childInit()
	case "txconsumer":
		err = childTxConsumer()
	default:
		return false
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	return true
}

// childInit runs Init, as `quantumflow init` does.
func childInit() error {
	ctx := context.Background()
	b, err := pubsub.Open(ctx, os.Getenv(envChildURL))
	if err != nil {
		return err
	}
	defer b.Close()
	return b.Init(ctx)
}

// TestConcurrentInitProcesses runs Init from several processes at once.
func TestConcurrentInitProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := pgtest.Database(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	var cmds []*exec.Cmd
	for range 4 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envChild+"=init", envChildURL+"="+withParams(base, "schema", "procs"))
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		require.NoError(t, cmd.Wait())
	}
	var versions, latest int
	require.NoError(t, connect(t, base).QueryRow(ctx, `SELECT count(*), max(version) FROM procs.quantum_flow_schema_migrations`).Scan(&versions, &latest))
	require.Equal(t, latest, versions, "every migration applied once")
}

// childConsumer acks some messages with four subscriptions, makes sure the
// acks are written, then takes one more message per subscription, reports
// them and holds them until it is killed.
func childConsumer() error {
	ctx := context.Background()
	queue := os.Getenv(envChildQueue)
	var acks int
	if _, err := fmt.Sscan(os.Getenv(envChildAcks), &acks); err != nil {
		return err
	}
	b, err := pubsub.Open(ctx, os.Getenv(envChildURL))
	if err != nil {
		return err
	}
	const subs = 4
	chans := make([]<-chan *message.Message, subs)
	for i := range chans {
		if chans[i], err = b.Subscriber().Subscribe(ctx, queue); err != nil {
			return err
		}
	}
	var acked []string
	for len(acked) < acks {
		m := <-chans[len(acked)%subs]
		acked = append(acked, m.UUID)
		m.Ack()
	}
	// Stats writes waiting acks first.
	if _, err := b.Stats(ctx, queue); err != nil {
		return err
	}
	fmt.Println("ACKED", strings.Join(acked, ","))
	var held []string
	for _, ch := range chans {
		held = append(held, (<-ch).UUID)
	}
	fmt.Println("HOLDING", strings.Join(held, ","))
	select {}
}

// TestKilledConsumerLosesNothing kills (SIGKILL) a consumer process that
// holds a claimed batch: its messages come back when the lease runs out,
// and what it acked does not.
func TestKilledConsumerLosesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := withParams(pgtest.Database(t), "lease", "1s")
	b := open(t, db)
	const queue, total, acks = "killed_consumer", 300, 50
	msgs := make([]*message.Message, total)
	for i := range msgs {
		msgs[i] = newMsg(fmt.Sprint(i))
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))

	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=consumer", envChildURL+"="+db, envChildQueue+"="+queue, envChildAcks+"="+fmt.Sprint(acks))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string) []string {
		t.Helper()
		select {
		case line, ok := <-lines:
			require.True(t, ok, "child exited")
			require.True(t, strings.HasPrefix(line, prefix+" "), "child said %q, want %s", line, prefix)
			return strings.Split(strings.TrimPrefix(line, prefix+" "), ",")
		case <-time.After(30 * time.Second):
			t.Fatalf("child did not say %s", prefix)
			return nil
		}
	}
	acked := expect("ACKED")
	held := expect("HOLDING")
	require.Len(t, acked, acks)
	require.Len(t, held, 4)

	st, err := b.Stats(ctx, queue)
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.InFlight, int64(4), "the child holds leases")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	killed = true
	_ = cmd.Wait()

	ackedSet := map[string]bool{}
	for _, id := range acked {
		ackedSet[id] = true
	}
	heldSet := map[string]bool{}
	for _, id := range held {
		heldSet[id] = true
	}
	want := map[string]bool{}
	for _, m := range msgs {
		if !ackedSet[m.UUID] {
			want[m.UUID] = true
		}
	}
	ch := subscribe(t, b, queue)
	for len(want) > 0 {
		m := pubsubtest.Receive(t, ch)
		require.False(t, ackedSet[m.UUID], "message %s was acked by the killed consumer", m.UUID)
		require.True(t, want[m.UUID], "message %s received twice", m.UUID)
		delete(want, m.UUID)
		if heldSet[m.UUID] {
			require.Equal(t, 2, pubsub.DeliveryOf(m).Attempt, "a delivery that died with its consumer counts")
		}
		m.Ack()
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, queue)
		return err == nil && st.Pending == 0 && st.InFlight == 0 && st.Scheduled == 0
	}, 10*time.Second, 10*time.Millisecond)
}
