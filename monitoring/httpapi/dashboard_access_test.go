package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
)

// TestDashboardAccess drives the dashboard in headless Chromium on every
// backend, with both tokens set: the page asks for a token before it
// shows anything; with the read token it shows the queues, the charts of
// the last hour and the dead letters, and a retry is refused; the dead
// letters are filtered by queue and error text; with the admin token the
// filtered set is retried, then another filtered set purged, each after a
// confirmation (nothing changes on the first click); both are in the
// audit log on the page; at phone width nothing overflows the screen; and
// "Forget" drops the token and what it showed.
// Screenshots of each step are kept in the artifact directory (see
// artifactDir) as dashboard-access-<backend>-<step>.png.
func TestDashboardAccess(t *testing.T) {
	t.Parallel()
	browser := chromiumPath(t)
	for _, kind := range backendKinds {
		// One browser at a time: the machine is small.
		t.Run(kind, func(t *testing.T) { dashboardAccess(t, browser, kind) })
	}
}

func dashboardAccess(t *testing.T, browser, kind string) {
	b := setupOn(t, kind, httpapi.Options{AdminToken: token, ReadToken: readToken, HistoryInterval: 200 * time.Millisecond})
	ctx := context.Background()
	timeouts := deadLetter(t, b.backend, "orders_queue", `{"e":"timeout a"}`, `{"e":"timeout b"}`)
	deadLetter(t, b.backend, "orders_queue", `{"e":"schema"}`)
	deadLetter(t, b.backend, "billing_queue", `{"e":"timeout c"}`)
	publish(t, b.backend, "orders_queue", `{"p":1}`)
	bctx := newBrowser(t, browser)
	art := artifactDir(t)
	shot := func(step string) {
		t.Helper()
		screenshot(t, bctx, filepath.Join(art, "dashboard-access-"+kind+"-"+step+".png"), 90)
	}
	defer func() {
		if t.Failed() {
			if body, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
				t.Logf("page text:\n%s", body)
			}
			shot("failure")
		}
	}()
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	rows := func(n int) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.body.dataset.loaded === "1" && document.querySelectorAll("#dead-letters tbody tr").length === %d`, n),
			chromedp.WithPollingInterval(50*time.Millisecond))
	}
	useToken := func(tok string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Evaluate[chromedp.Void](`document.querySelector("#token").value = ""`),
			chromedp.SendKeys(css(`#token`), tok),
			chromedp.Click(css(`#save-token`)),
		)
	}
	deadCount := func(queue string) int64 {
		st, err := b.backend.Stats(ctx, queue)
		require.NoError(t, err)
		return st.DeadLetters
	}

	// No token: nothing but the request for one.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(b.server.URL+"/"),
		waitText(`#status`, "token needed"),
		waitText(`#token-state`, "needs a read or admin token"),
	))
	n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#queues tbody tr, #dead-letters tbody tr").length`))
	require.NoError(t, err)
	require.Zero(t, n, "no data without a token")
	shot("1-locked")

	// The read token shows everything, charts included, and changes nothing.
	row := `#dead-letters tr[data-id="` + timeouts[0] + `"]`
	require.NoError(t, chromedp.Do(bctx,
		useToken(readToken),
		chromedp.WaitVisible(css(row)),
		waitText(`#token-state`, "read token"),
		chromedp.Poll[chromedp.Void](`document.querySelector('#chart-depth polyline[data-series="pending"]') !== null`,
			chromedp.WithPollingInterval(100*time.Millisecond)),
	))
	require.Equal(t, "1", textOf(t, bctx, `#queues tr[data-queue="orders_queue"] td.pending`))
	shot("2-read-token")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(row+` button.retry`)),
		waitText(`#message`, "read token cannot change anything"),
	))
	require.Equal(t, int64(3), deadCount("orders_queue"))

	// Filter by queue and error text.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#dlq-queue"); s.value = "orders_queue"; s.dispatchEvent(new Event("change")); })()`),
		rows(3),
		chromedp.SendKeys(css(`#dlq-error`), "TIMEOUT"),
		rows(2),
		waitText(`#retry-selected-queue`, "Retry all matching"),
	))
	shot("3-filtered")

	// The admin token retries the filtered set, after a confirmation.
	require.NoError(t, chromedp.Do(bctx,
		useToken(token),
		waitText(`#token-state`, "admin token"),
		chromedp.Click(css(`#retry-selected-queue`)),
		waitText(`#retry-selected-queue`, "Confirm"),
	))
	require.Equal(t, int64(3), deadCount("orders_queue"), "the first click only asks")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(`#retry-selected-queue`)),
		waitText(`#message`, "Retried 2 dead letters."),
		rows(0),
	))
	require.Equal(t, int64(1), deadCount("orders_queue"))
	require.Equal(t, int64(1), deadCount("billing_queue"), "another queue's timeout is not in the filter")
	pending, err := b.backend.ListPending(ctx, "orders_queue", 10)
	require.NoError(t, err)
	require.Len(t, pending, 3)

	// Another filter, purged after a confirmation.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#dlq-error").value = ""`),
		chromedp.SendKeys(css(`#dlq-error`), "schema"),
		rows(1),
		chromedp.Click(css(`#purge-selected-queue`)),
		waitText(`#purge-selected-queue`, "Confirm"),
		chromedp.Click(css(`#purge-selected-queue`)),
		waitText(`#message`, "Purged 1 dead letter."),
		rows(0),
	))
	require.Zero(t, deadCount("orders_queue"))
	require.Equal(t, int64(1), deadCount("billing_queue"))

	// Both are in the audit log on the page.
	retried := `#audit tr[data-action="dlq.retry"]`
	purged := `#audit tr[data-action="dlq.purge"]`
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(css(retried)), chromedp.WaitVisible(css(purged))))
	require.Equal(t, "admin", textOf(t, bctx, retried+` td.role`))
	require.Equal(t, "orders_queue", textOf(t, bctx, retried+` td.queue`))
	require.Equal(t, "2", textOf(t, bctx, retried+` td.count`))
	require.Contains(t, textOf(t, bctx, retried), `error_contains="TIMEOUT"`)
	require.Equal(t, "1", textOf(t, bctx, purged+` td.count`))
	shot("4-audit")

	// Phone width: one column, tables scroll inside their box.
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(css(retried))))
	overflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	require.NoError(t, err)
	if overflow {
		wide, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".scroll")).map((e) => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)).join("\n")`))
		t.Errorf("the page is wider than a phone; elements past its edge:\n%s", wide)
	}
	shot("5-phone")

	// Forgetting the token hides what it showed.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(css(`#forget-token`)),
		waitText(`#status`, "token needed"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("tbody tr").length === 0 && sessionStorage.getItem("quantumflow.token") === null`,
			chromedp.WithPollingInterval(50*time.Millisecond)),
	))

	entries, err := b.backend.Audit(ctx, 10)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the refused retry was not audited")
	out, _ := json.Marshal(entries)
	require.NotContains(t, string(out), token)
	require.NotContains(t, string(out), readToken)
}

// textOf returns the text of the visible element sel.
func textOf(t *testing.T, bctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	require.NoError(t, err, sel)
	return s
}
