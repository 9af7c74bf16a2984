package nats_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestReceiveOutlastsSlowReplies checks that a receive keeps what a slow
// server sends: when every reply of the server takes seconds to reach the
// backend (a loaded machine), the messages of a no-wait pull request
// still arrive, each once, on its first attempt. nats.go's FetchNoWait
// gave up after a second and unsubscribed: the messages the server sent
// then were lost until ack_wait, and the receive found none. At 3 s the
// receive stops waiting for the answer (takeNowWait), says so in the log,
// and its abandoned request still brings what the server sent for it.
func TestReceiveOutlastsSlowReplies(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{1500 * time.Millisecond, 3 * time.Second} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			const queue, n = "slowreplies", 5
			var logged testutil.SyncBuffer
			p, b := behindDelayProxy(t, queue, n, slog.New(slog.NewTextHandler(&logged, nil)))
			d := b.Driver()
			p.delay.Store(int64(delay))
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var got []*pubsub.Received
			for len(got) < n {
				ms, err := d.ReceiveBatch(ctx, queue, n-len(got))
				require.NoError(t, err, "after %d of %d messages", len(got), n)
				got = append(got, ms...)
			}
			p.delay.Store(0)
			for _, m := range got {
				require.Equal(t, 1, m.Attempt, "attempt of message #%d", m.Seq)
			}
			ackAll(t, d, queue, got)
			if delay > 2*time.Second {
				// (At 1.5 s a loaded machine may abandon too: not checked.)
				require.Contains(t, logged.String(), "pull request got no answer and was abandoned")
				require.Contains(t, logged.String(), "queue="+queue)
			}
		})
	}
}

// TestDeadLettersListedFromSlowServer checks that the dead-letter listing
// is whole when the server's replies take 1.5 s to arrive: with a no-wait
// fetch it gave up after a second and listed nothing.
func TestDeadLettersListedFromSlowServer(t *testing.T) {
	t.Parallel()
	const queue, n = "slowlisting", 5
	p, b := behindDelayProxy(t, queue, n)
	d := b.Driver()
	got := receiveAll(t, d, queue, n, 1)
	ss := make([]pubsub.Settlement, n)
	for i, m := range got {
		ss[i] = pubsub.Settlement{Msg: m, Action: pubsub.SettleDeadLetter, Error: "failed"}
	}
	require.NoError(t, d.Settle(t.Context(), queue, ss))

	p.delay.Store(int64(1500 * time.Millisecond))
	dls, err := b.ListDeadLetters(t.Context(), pubsub.DeadLetterQuery{Queue: queue})
	p.delay.Store(0)
	require.NoError(t, err)
	require.Len(t, dls, n)
}

// behindDelayProxy opens a backend on a new server through a delayProxy
// (no delay yet), and publishes n messages to queue.
func behindDelayProxy(t *testing.T, queue string, n int, logger ...*slog.Logger) (*delayProxy, *pubsub.Backend) {
	t.Helper()
	p := newDelayProxy(t, server(t).ClientURL())
	var b *pubsub.Backend
	if len(logger) > 0 {
		var err error
		b, err = pubsub.Open(t.Context(), p.url, pubsub.WithLogger(logger[0]))
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
	} else {
		b = openBackend(t, p.url)
	}
	require.NoError(t, b.Publisher().Publish(queue, newMessages(n, queue)...))
	return p, b
}

// delayProxy relays TCP connections to a NATS server, holding back what
// the server sends by delay (nanoseconds, read as each chunk arrives).
type delayProxy struct {
	url   string
	delay atomic.Int64
}

func newDelayProxy(t *testing.T, serverURL string) *delayProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &delayProxy{url: "nats://" + ln.Addr().String()}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	target := strings.TrimPrefix(serverURL, "nats://")
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, srv)
			mu.Unlock()
			go func() { _, _ = io.Copy(srv, client) }()
			go p.relay(client, srv)
		}
	}()
	return p
}

// relay copies src to dst, each chunk written delay after it was read,
// in order.
func (p *delayProxy) relay(dst, src net.Conn) {
	type chunk struct {
		due  time.Time
		data []byte
	}
	chunks := make(chan chunk, 1024)
	go func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{due: time.Now().Add(time.Duration(p.delay.Load())), data: bytes.Clone(buf[:n])}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}
