package httpapi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// TestDashboardControls drives the operator controls in a real headless
// Chromium: a queue's page lists its pending messages a page at a time
// (a delayed one with its time), a message's page shows its detail and
// deletes it after a confirming second click, and the queue table pauses
// and resumes a queue (confirmed too); the backend shows each change.
// On mem, PostgreSQL and NATS; screenshots of the queue page and the
// message page are kept, named by backend.
func TestDashboardControls(t *testing.T) {
	t.Parallel()
	browser := chromiumPath(t)
	for _, kind := range backendKinds {
		// One browser at a time: the machine is small.
		t.Run(kind, func(t *testing.T) { dashboardControls(t, browser, kind) })
	}
}

func dashboardControls(t *testing.T, browser, kind string) {
	b := setupOn(t, kind, httpapi.Options{AdminToken: token})
	ctx := context.Background()
	const q = "proposals_for_consensus_queue"
	payloads := make([]string, 25)
	for i := range payloads {
		payloads[i] = fmt.Sprintf(`{"proposal":"p-%02d"}`, i)
	}
	ids := publish(t, b.backend, q, payloads...)
	delayed := message.NewMessage(watermill.NewUUID(), []byte(`{"proposal":"later"}`))
	pubsub.SetDeliverAt(delayed, time.Now().Add(time.Hour))
	require.NoError(t, b.backend.Publisher().Publish(q, delayed))

	bctx := newBrowser(t, browser)
	art := artifactDir(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	shot := func(name string) {
		t.Helper()
		screenshot(t, bctx, filepath.Join(art, kind+"-"+name), 100)
	}
	defer func() {
		if t.Failed() {
			shot("dashboard-controls-failure.png")
		}
	}()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(css(sel), chromedp.NodeVisible))
		require.NoError(t, err, sel)
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		require.NoError(t, err)
		return n
	}

	// The queue's page: 20 messages, then the other 6 on the next page,
	// the delayed one last with its time.
	row := func(id string) string { return `#qp-pending tr[data-id="` + id + `"]` }
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(b.server.URL+"/"),
		chromedp.WaitVisible(css(`#queues tr[data-queue="`+q+`"] a.open`)),
		chromedp.Click(css(`#queues tr[data-queue="`+q+`"] a.open`)),
		chromedp.WaitVisible(css(row(ids[0]))),
	))
	require.Equal(t, 20, count("#qp-pending tbody tr"))
	require.Equal(t, "running", text("#qp-state"))
	require.Contains(t, text("#qp-counts"), "25 pending")
	require.Contains(t, text("#qp-counts"), "1 scheduled")
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(css("#qp-next")), chromedp.WaitVisible(css(row(delayed.UUID)))))
	require.Equal(t, 6, count("#qp-pending tbody tr"))
	require.NotEqual(t, "now", text(row(delayed.UUID)+" td.available"))
	shot("dashboard-queue-page.png")

	// A message's page, and its deletion: refused without the token,
	// then confirmed by a second click.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(row(ids[24])+" a")),
		chromedp.WaitVisible(css(`#md-fields tr[data-field="state"]`)),
	))
	require.Equal(t, "pending", text(`#md-fields tr[data-field="state"] td`))
	require.Equal(t, q, text(`#md-fields tr[data-field="queue"] td`))
	require.Contains(t, text("#md-payload"), `"proposal": "p-24"`)
	shot("dashboard-message.png")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css("#md-delete")),
		waitText("#message", "Enter the admin token first"),
		chromedp.SendKeys(css("#token"), token),
		chromedp.Click(css("#save-token")),
		chromedp.Click(css("#md-delete")),
		waitText("#md-delete", "Confirm delete?"),
	))
	_, err := b.backend.GetMessage(ctx, q, ids[24])
	require.NoError(t, err, "one click deletes nothing")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css("#md-delete")),
		waitText("#message", "Deleted message "+ids[24]),
		chromedp.WaitVisible(css("#queue-page")),
	))
	_, err = b.backend.GetMessage(ctx, q, ids[24])
	require.ErrorIs(t, err, pubsub.ErrMessageNotFound)

	// Pause and resume from the queue table, each confirmed.
	qrow := `#queues tr[data-queue="` + q + `"]`
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(b.server.URL+"/#"),
		chromedp.WaitVisible(css(qrow+" button.pause")),
		chromedp.Click(css(qrow+" button.pause")),
		waitText(qrow+" button.pause", "Confirm pause?"),
	))
	paused, err := b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Empty(t, paused, "one click pauses nothing")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(qrow+" button.pause")),
		waitText("#message", "Paused "+q),
		chromedp.WaitVisible(css(qrow+`[data-paused="1"] button.resume`)),
	))
	paused, err = b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{q}, paused)
	require.Equal(t, 1, count(qrow+".paused"), "the row is marked paused")
	shot("dashboard-paused.png")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(qrow+" button.resume")),
		chromedp.Click(css(qrow+" button.resume")),
		waitText("#message", "Resumed "+q),
		chromedp.WaitVisible(css(qrow+`[data-paused="0"] button.pause`)),
	))
	paused, err = b.backend.PausedQueues(ctx)
	require.NoError(t, err)
	require.Empty(t, paused)
}
