package reliability

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLossIsCounted: messages published and never consumed are lost, and
// fail the result; the harness cannot pass a run that lost messages.
func TestLossIsCounted(t *testing.T) {
	ctx := context.Background()
	e := startEnv(ctx, nil, false, false)
	defer e.close()
	res := &Result{Pass: true}
	r := &run{cfg: Config{Short: true}, env: e, backend: Mem, res: res, progress: io.Discard}
	u, err := e.url(ctx, Mem)
	require.NoError(t, err)
	f, err := r.openFlow(ctx, u, 30)
	require.NoError(t, err)
	defer f.close()
	require.NoError(t, f.publish(ctx, load{To: 30, Batch: 10, Workers: 2}))
	a, err := f.drain(ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 30, a.missingGood)
	require.EqualValues(t, 30, res.Published)
	require.EqualValues(t, 30, res.Lost)
	require.False(t, res.Pass)
	require.Contains(t, res.Why, "30 published message(s) neither consumed nor dead-lettered")
}

// TestPoisonOnMem runs the poison scenario's short variant on mem: every
// malformed message dead-lettered with its reason, every good one
// consumed, and the report says so.
func TestPoisonOnMem(t *testing.T) {
	rep, err := Run(context.Background(), Config{Short: true, Scenarios: []string{ScenarioPoison}, Backends: []string{Mem}})
	require.NoError(t, err)
	require.Len(t, rep.Results, 1)
	res := rep.Results[0]
	require.EqualValues(t, 1500, res.Published)
	require.EqualValues(t, 1000, res.Consumed)
	require.EqualValues(t, 500, res.DeadLettered)
	require.Zero(t, res.Lost)
	// The latency rule may fail on a loaded machine; the accounting may
	// not.
	require.NotContains(t, res.Why, "dead letters")
	require.NotContains(t, res.Why, "neither consumed")
	var md bytes.Buffer
	require.NoError(t, rep.WriteMarkdown(&md))
	require.Contains(t, md.String(), "| poison | mem |")
	require.Contains(t, md.String(), "Rule: every malformed message is in the dead letters")
}

// TestUnknownScenario: a scenario or backend not known is refused by
// name.
func TestUnknownScenario(t *testing.T) {
	_, err := Run(context.Background(), Config{Scenarios: []string{"nope"}})
	require.ErrorContains(t, err, `unknown scenario "nope"`)
	_, err = Run(context.Background(), Config{Backends: []string{"redis"}})
	require.ErrorContains(t, err, `unknown backend "redis"`)
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_, err := c.Write([]byte(s))
	require.NoError(t, err)
	buf := make([]byte, len(s))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, s, string(buf))
}

// TestProxyFaults: the proxy adds its latency each way, holds data back
// during a blackhole and delivers it after, and resets connections.
func TestProxyFaults(t *testing.T) {
	px, err := startProxy(echoServer(t))
	require.NoError(t, err)
	defer px.close()
	c, err := net.Dial("tcp", px.addr())
	require.NoError(t, err)
	defer c.Close()
	roundTrip(t, c, "hello")

	px.setLatency(100 * time.Millisecond)
	began := time.Now()
	roundTrip(t, c, "slow")
	require.GreaterOrEqual(t, time.Since(began), 200*time.Millisecond, "100ms each way")
	px.setLatency(0)

	px.blackhole(true)
	_, err = c.Write([]byte("held"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = c.Read(make([]byte, 4))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "nothing passes a blackhole: %v", err)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	px.blackhole(false)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "held", string(buf))

	require.Equal(t, 2, px.reset(), "the client's and the server's side")
	_, err = io.ReadFull(c, buf)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "reset") || err == io.EOF, "got %v", err)
}
