package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

const token = "s3cret-admin-token"

type bundle struct {
	backend *pubsub.Backend
	server  *httptest.Server
	reg     *prometheus.Registry
}

// setup opens a private mem backend and serves the API over it.
func setup(t *testing.T, opts httpapi.Options) *bundle {
	t.Helper()
	return setupOn(t, "mem", opts)
}

func publish(t *testing.T, b *pubsub.Backend, queue string, payloads ...string) []string {
	t.Helper()
	ids := make([]string, len(payloads))
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(p))
		ids[i] = msgs[i].UUID
	}
	require.NoError(t, b.Publisher().Publish(queue, msgs...))
	return ids
}

// deadLetter publishes one message per payload to queue and has each
// dead-lettered by a real subscription, as the poison middleware would.
func deadLetter(t *testing.T, b *pubsub.Backend, queue string, payloads ...string) []string {
	t.Helper()
	ids := publish(t, b, queue, payloads...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := b.Subscriber().Subscribe(ctx, queue)
	require.NoError(t, err)
	for range payloads {
		select {
		case msg := <-ch:
			d := pubsub.DeliveryOf(msg)
			require.NotNil(t, d)
			d.MarkDeadLetter(pubsub.DeadLetterReason{Error: "handler exploded: " + string(msg.Payload), Handler: "handle_test", Service: "centralcloud"})
			msg.Ack()
		case <-ctx.Done():
			t.Fatal("timed out waiting for a message to dead-letter")
		}
	}
	require.Eventually(t, func() bool {
		st, err := b.Stats(context.Background(), queue)
		return err == nil && st.DeadLetters >= int64(len(payloads))
	}, 5*time.Second, 10*time.Millisecond)
	// End the subscription and wait for its channel to close: until then
	// a receive of it may still take a message published after this
	// returns, and hold it in flight for a moment.
	cancel()
	for msg := range ch {
		msg.Nack()
	}
	return ids
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

func do(t *testing.T, srv *httptest.Server, method, path, auth string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: data}
}

func bearer(tok string) string { return fmt.Sprintf("Bearer %s", tok) }

func httpapiServer(t *testing.T, opts httpapi.Options) *httptest.Server {
	t.Helper()
	h := httpapi.New(opts)
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
