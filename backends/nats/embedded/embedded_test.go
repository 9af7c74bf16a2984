package embedded_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
)

func connect(t *testing.T, urls ...string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls[0], nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func TestStartPersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()

	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
	require.NoError(t, err)
	require.Contains(t, srv.ClientURL(), "nats://127.0.0.1:")
	require.Equal(t, dir, srv.DataDir())
	port := srv.Port()

	js := connect(t, srv.ClientURL())
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "s", []byte("kept"))
	require.NoError(t, err)
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "Close is idempotent")

	srv, err = embedded.Start(ctx, embedded.Options{DataDir: dir, Port: port})
	require.NoError(t, err)
	defer srv.Close()
	require.Equal(t, port, srv.Port())
	// The first connection reconnects to the restarted server on its own.
	require.Eventually(t, func() bool {
		st, err := js.Stream(ctx, "S")
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, "s")
		return err == nil && string(m.Data) == "kept"
	}, 10*time.Second, 20*time.Millisecond)
}

func TestStartTempDirRemoved(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(t.Context(), embedded.Options{})
	require.NoError(t, err)
	dir := srv.DataDir()
	require.DirExists(t, dir)
	require.NoError(t, srv.Close())
	require.NoDirExists(t, dir)
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = embedded.Start(ctx, embedded.Options{Port: l.Addr().(*net.TCPAddr).Port})
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "a port in use is reported, not waited out")
}

func TestClusterSurvivesNodeLoss(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := embedded.StartCluster(ctx, 3, embedded.Options{})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 3, c.Size())

	urls := c.ClientURLs()
	nc, err := nats.Connect(urls[0]+","+urls[1]+","+urls[2], nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	createStream(ctx, t, js, jetstream.StreamConfig{Name: "R", Subjects: []string{"r"}, Replicas: 3})

	require.NoError(t, c.StopNode(1))
	require.Nil(t, c.NATSServer(1))
	for i := range 10 {
		require.Eventually(t, func() bool {
			// A request written to the stopped node's socket gets no
			// answer: give each attempt its own timeout.
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := js.Publish(actx, "r", []byte(strconv.Itoa(i)), jetstream.WithMsgID(strconv.Itoa(i)))
			return err == nil
		}, 20*time.Second, 50*time.Millisecond)
	}
	require.NoError(t, c.RestartNode(ctx, 1))
	require.Error(t, c.RestartNode(ctx, 1), "node 1 is running")
	// Ready means a stream can be placed on every node, at once.
	createStream(ctx, t, js, jetstream.StreamConfig{Name: "R2", Subjects: []string{"r2"}, Replicas: 3})
	info, err := js.Stream(ctx, "R")
	require.NoError(t, err)
	require.EqualValues(t, 10, info.CachedInfo().State.Msgs)
}

// createStream creates a stream as a client of a cluster must: each try
// with its own timeout, again while it goes unanswered. A request can be
// lost while the meta leader changes, even on a cluster WaitReady found
// ready (a fresh-clone CI run waited out its whole minute on one), and
// CreateStream alone would wait for it until ctx ends.
func createStream(ctx context.Context, t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(actx, cfg) // the same config again is no error
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			require.NoError(t, err, "create stream %s", cfg.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
