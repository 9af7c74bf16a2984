package journal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/internal/journal"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// setup opens a journal in a temporary directory.
func setup(t *testing.T, instance string) (*journal.Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := journal.Open(path, topology.Singularity, instance)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, j.Close()) })
	return j, path
}

func read(t *testing.T, path string) []journal.Entry {
	t.Helper()
	entries, cut, err := journal.ReadFile(path)
	require.NoError(t, err)
	require.Zero(t, cut, "no cut lines")
	return entries
}

// delivered returns a message as a backend hands it out from queue.
func delivered(queue, id string, payload string) (*message.Message, *pubsub.Delivery) {
	msg := message.NewMessage(id, []byte(payload))
	msg.Metadata.Set(pubsub.MetadataOrigin, "cc")
	d := &pubsub.Delivery{Queue: queue, Attempt: 2}
	pubsub.AttachDelivery(msg, d)
	return msg, d
}

func TestMiddleware(t *testing.T) {
	t.Parallel()

	t.Run("ConsumedBeforeTheHandlersNilReturns", func(t *testing.T) {
		t.Parallel()
		j, path := setup(t, "s1")
		msg, _ := delivered("consensus_results_queue@s1", "m1", `{"instance":"s1"}`)
		_, err := j.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(msg)
		require.NoError(t, err)
		// The line is in the file when the router gets nil (and acks).
		got := read(t, path)
		require.Len(t, got, 1)
		e := got[0]
		require.Equal(t, journal.Consumed, e.Event)
		require.Equal(t, "consensus_results_queue@s1", e.Queue)
		require.Equal(t, "m1", e.ID)
		require.Equal(t, "s1", e.Instance)
		require.Equal(t, topology.Singularity, e.Service)
		require.Equal(t, os.Getpid(), e.PID)
		require.Equal(t, 2, e.Attempt)
		require.Equal(t, "cc", e.Origin)
		require.JSONEq(t, `{"instance":"s1"}`, string(e.PayloadBytes()))
	})

	t.Run("FailedAttemptWritesNothing", func(t *testing.T) {
		t.Parallel()
		j, path := setup(t, "s1")
		msg, _ := delivered("q", "m1", `{}`)
		boom := errors.New("boom")
		_, err := j.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, boom })(msg)
		require.ErrorIs(t, err, boom)
		require.Empty(t, read(t, path))
	})

	t.Run("DeadLetterIsNotConsumed", func(t *testing.T) {
		t.Parallel()
		j, path := setup(t, "s1")
		msg, d := delivered("q", "m1", `not json`)
		_, err := j.Middleware(func(*message.Message) ([]*message.Message, error) {
			// What the poison middleware does inside: mark, then nil.
			d.MarkDeadLetter(pubsub.DeadLetterReason{Error: "malformed"})
			return nil, nil
		})(msg)
		require.NoError(t, err)
		got := read(t, path)
		require.Len(t, got, 1)
		require.Equal(t, journal.DeadLettered, got[0].Event)
		require.Equal(t, "malformed", got[0].Error)
		require.Equal(t, "not json", string(got[0].PayloadBytes()), "a payload that is not JSON is kept as bytes")
	})

	t.Run("WriteFailureFailsTheAttempt", func(t *testing.T) {
		t.Parallel()
		j, _ := setup(t, "s1")
		require.NoError(t, j.Close())
		msg, _ := delivered("q", "m1", `{}`)
		_, err := j.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })(msg)
		require.ErrorIs(t, err, journal.ErrClosed, "no ack without its line")
	})
}

type fakePublisher struct{ err error }

func (p fakePublisher) Publish(string, ...*message.Message) error { return p.err }
func (p fakePublisher) Close() error                              { return nil }

func TestWrapPublisher(t *testing.T) {
	t.Parallel()

	t.Run("PublishedOnceStored", func(t *testing.T) {
		t.Parallel()
		j, path := setup(t, "s1")
		m1, m2 := message.NewMessage("a", []byte(`{}`)), message.NewMessage("b", []byte(`{}`))
		m2.Metadata.Set(pubsub.MetadataTo, "s2")
		require.NoError(t, j.WrapPublisher(fakePublisher{}).Publish("q@s2", m1, m2))
		got := read(t, path)
		require.Len(t, got, 2)
		for i, id := range []string{"a", "b"} {
			require.Equal(t, journal.Published, got[i].Event)
			require.Equal(t, "q@s2", got[i].Queue)
			require.Equal(t, id, got[i].ID)
			require.Equal(t, "s1", got[i].Instance)
		}
		require.Equal(t, "s2", got[1].To)
	})

	t.Run("FailedPublishWritesNothing", func(t *testing.T) {
		t.Parallel()
		j, path := setup(t, "s1")
		boom := errors.New("boom")
		require.ErrorIs(t, j.WrapPublisher(fakePublisher{err: boom}).Publish("q", message.NewMessage("a", nil)), boom)
		require.Empty(t, read(t, path))
	})
}

// TestCutLine: a process killed in the middle of a write leaves a cut
// line; the next process to open the journal ends it, so only that line
// is lost.
func TestCutLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"event":"consumed","queue":"q","id":"1"}`+"\n"+`{"event":"consu`), 0o644))
	j, err := journal.Open(path, topology.CentralCloud, "cc")
	require.NoError(t, err)
	require.NoError(t, j.WrapPublisher(fakePublisher{}).Publish("q", message.NewMessage("2", []byte(`{}`))))
	require.NoError(t, j.Close())

	entries, cut, err := journal.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, cut)
	require.Len(t, entries, 2)
	require.Equal(t, "1", entries[0].ID)
	require.Equal(t, "2", entries[1].ID)

	entries, cut, err = journal.ReadFile(filepath.Join(t.TempDir(), "missing"))
	require.NoError(t, err)
	require.Zero(t, cut)
	require.Empty(t, entries, "a journal not written yet is empty")
}

// TestProcessesShareAFile: journals of several writers on one file keep
// every line whole.
func TestProcessesShareAFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.jsonl")
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		j, err := journal.Open(path, topology.Singularity, fmt.Sprintf("s%d", w))
		require.NoError(t, err)
		pub := j.WrapPublisher(fakePublisher{})
		wg.Go(func() {
			defer j.Close()
			for i := range each {
				// A payload longer than a page, so writes span pages.
				payload := `{"pad":"` + strings.Repeat("x", 5000) + `"}`
				_ = pub.Publish("q", message.NewMessage(fmt.Sprintf("%d-%d", w, i), []byte(payload)))
			}
		})
	}
	wg.Wait()
	require.Len(t, read(t, path), writers*each)
}

// TestThroughARouter: on a running router the consumed queue and the
// published one are the queues as the backend names them, with the
// instance for addressed delivery.
func TestThroughARouter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://journal-router")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	ccJournal, ccPath := setup(t, "cc")
	cfg, ok := topology.Default(topology.CentralCloud)
	require.True(t, ok)
	cfg.InstanceID = "cc"
	var cc *router.Router
	cc, err = router.New(router.Config{
		Service: cfg, Backend: b, Queues: []string{topology.ProposalsQueue},
		Middlewares: []message.HandlerMiddleware{ccJournal.Middleware}, WrapPublisher: ccJournal.WrapPublisher,
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: func(msg *message.Message) error {
			results, err := cc.Publisher(topology.ConsensusQueue)
			if err != nil {
				return err
			}
			_, err = results.Reply(msg.Context(), msg, []byte(`{"answer":true}`))
			return err
		}},
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cc.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case <-cc.Running():
	case err := <-done:
		t.Fatalf("router stopped: %v", err)
	}

	// Singularity s1 proposes, from a router of its own.
	sJournal, sPath := setup(t, "s1")
	scfg, ok := topology.Default(topology.Singularity)
	require.True(t, ok)
	scfg.InstanceID = "s1"
	noop := func(*message.Message) error { return nil }
	s1, err := router.New(router.Config{Service: scfg, Backend: b, WrapPublisher: sJournal.WrapPublisher, Queues: []string{topology.ConsensusQueue},
		Handlers: map[string]router.Handler{topology.HandleConsensusResult: noop}})
	require.NoError(t, err)
	proposals, err := s1.Publisher(topology.ProposalsQueue)
	require.NoError(t, err)
	id, err := proposals.Publish(ctx, []byte(`{"id":"p1"}`))
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		got, _, _ := journal.ReadFile(ccPath)
		return len(got) == 2
	}, 10*time.Second, 10*time.Millisecond, "the result published and the proposal consumed")
	got := read(t, ccPath)
	byEvent := map[string]journal.Entry{}
	for _, e := range got {
		byEvent[e.Event] = e
	}
	require.Equal(t, topology.ConsensusQueue+"@s1", byEvent[journal.Published].Queue, "the result goes to s1's queue")
	require.Equal(t, "s1", byEvent[journal.Published].To)
	require.Equal(t, topology.ProposalsQueue, byEvent[journal.Consumed].Queue)
	require.Equal(t, id, byEvent[journal.Consumed].ID)
	require.Equal(t, "s1", byEvent[journal.Consumed].Origin)
	require.Equal(t, "cc", byEvent[journal.Consumed].Instance)
	// The handler publishes the result before it returns: the result's
	// line comes first, the proposal's consumed line after.
	require.Equal(t, journal.Published, got[0].Event)

	sGot := read(t, sPath)
	require.Len(t, sGot, 1)
	require.Equal(t, journal.Published, sGot[0].Event)
	require.Equal(t, topology.ProposalsQueue, sGot[0].Queue)
	require.Equal(t, id, sGot[0].ID)
}
