package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestPauseAndResumeOverHTTP checks POST /api/queues/{queue}/pause and
// /resume: admin only, shown in the queue's view, the backend paused;
// an unknown queue is 404, a bad name or a body 400, nothing changed.
func TestPauseAndResumeOverHTTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, httpapi.Options{AdminToken: token})
	const q = "proposals_for_consensus_queue"
	publish(t, b.backend, q, `{"n":1}`)

	require.Equal(t, http.StatusUnauthorized, do(t, b.server, "POST", "/api/queues/"+q+"/pause", "", nil).status)
	require.Equal(t, http.StatusForbidden, do(t, b.server, "POST", "/api/queues/"+q+"/pause", bearer("wrong"), nil).status)
	paused, err := b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Empty(t, paused, "a refused pause changed nothing")

	res := do(t, b.server, "POST", "/api/queues/"+q+"/pause", bearer(token), nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	paused, err = b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{q}, paused)
	var v httpapi.QueueView
	do(t, b.server, "GET", "/api/queues/"+q, "", nil).json(t, &v)
	require.True(t, v.Paused)

	res = do(t, b.server, "POST", "/api/queues/"+q+"/resume", bearer(token), "{}")
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	do(t, b.server, "GET", "/api/queues/"+q, "", nil).json(t, &v)
	require.False(t, v.Paused)

	res = do(t, b.server, "POST", "/api/queues/no_such_queue/pause", bearer(token), nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Contains(t, string(res.body), "queue not found")
	res = do(t, b.server, "POST", "/api/queues/bad%20name/pause", bearer(token), nil)
	require.Equal(t, http.StatusBadRequest, res.status)
	res = do(t, b.server, "POST", "/api/queues/"+q+"/pause", bearer(token), `{"queue":"x"}`)
	require.Equal(t, http.StatusBadRequest, res.status)
	paused, err = b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Empty(t, paused, "refused requests changed nothing")
}

// TestMessageDetailAndDelete checks GET and DELETE /api/messages/{id}: the
// detail of a waiting, a held and a dead-lettered message; delete is
// admin only, removes a waiting message, answers 409 for a held one and
// 404 for an unknown id.
func TestMessageDetailAndDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, httpapi.Options{AdminToken: token})
	const q = "metrics_to_guardian_queue"
	dead := deadLetter(t, b.backend, q, `{"boom":1}`)[0]
	m := message.NewMessage(watermill.NewUUID(), []byte(`{"cpu":0.5}`))
	m.Metadata.Set("origin", "test")
	pubsub.SetDeliverAt(m, time.Now().Add(time.Hour))
	require.NoError(t, b.backend.Publisher().Publish(q, m))

	var v httpapi.MessageView
	res := do(t, b.server, "GET", "/api/messages/"+m.UUID, "", nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	res.json(t, &v)
	require.Equal(t, "scheduled", v.State)
	require.Equal(t, q, v.Queue)
	require.JSONEq(t, `{"cpu":0.5}`, string(v.Payload))
	require.Equal(t, "test", v.Metadata["origin"])
	require.False(t, v.AvailableAt.IsZero())

	do(t, b.server, "GET", "/api/messages/"+dead+"?queue="+q, "", nil).json(t, &v)
	require.Equal(t, "dead_letter", v.State)
	require.Contains(t, v.Error, "handler exploded")

	require.Equal(t, http.StatusNotFound, do(t, b.server, "GET", "/api/messages/nope", "", nil).status)
	require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/messages/x?queue=bad%20name", "", nil).status)
	require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/messages/x?other=1", "", nil).status)

	require.Equal(t, http.StatusUnauthorized, do(t, b.server, "DELETE", "/api/messages/"+m.UUID, "", nil).status)
	_, err := b.backend.GetMessage(ctx, "", m.UUID)
	require.NoError(t, err, "a refused delete changed nothing")
	res = do(t, b.server, "DELETE", "/api/messages/"+m.UUID+"?queue="+q, bearer(token), nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	_, err = b.backend.GetMessage(ctx, "", m.UUID)
	require.ErrorIs(t, err, pubsub.ErrMessageNotFound)
	res = do(t, b.server, "DELETE", "/api/messages/"+m.UUID, bearer(token), nil)
	require.Equal(t, http.StatusNotFound, res.status)

	held := publish(t, b.backend, q, `{"held":true}`)[0]
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.backend.Subscriber().Subscribe(sctx, q)
	require.NoError(t, err)
	got := <-ch
	require.Equal(t, held, got.UUID)
	do(t, b.server, "GET", "/api/messages/"+held, "", nil).json(t, &v)
	require.Equal(t, "in_flight", v.State)
	res = do(t, b.server, "DELETE", "/api/messages/"+held, bearer(token), nil)
	require.Equal(t, http.StatusConflict, res.status)
	require.Contains(t, string(res.body), "in flight")
	got.Ack()
}

// TestPendingPages checks ?offset on the pending listing: pages follow
// each other without gaps or repeats, and "more" says whether another
// follows.
func TestPendingPages(t *testing.T) {
	t.Parallel()
	b := setup(t, httpapi.Options{})
	const q = "proposals_for_consensus_queue"
	ids := publish(t, b.backend, q, "a", "b", "c", "d", "e")
	type page struct {
		Messages []httpapi.MessageView `json:"messages"`
		More     bool                  `json:"more"`
	}
	var got []string
	for offset, more := 0, true; more; offset += 2 {
		var p page
		do(t, b.server, "GET", "/api/queues/"+q+"/pending?limit=2&offset="+string(rune('0'+offset)), "", nil).json(t, &p)
		for _, m := range p.Messages {
			got = append(got, m.ID)
		}
		more = p.More
		require.Equal(t, offset+2 < len(ids), more, "more at offset %d", offset)
	}
	require.Equal(t, ids, got)
	require.Equal(t, http.StatusBadRequest, do(t, b.server, "GET", "/api/queues/"+q+"/pending?offset=-1", "", nil).status)
}
