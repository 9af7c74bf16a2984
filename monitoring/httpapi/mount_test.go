package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/pubsub"
)

// service is a service of its own with the handler mounted under a
// prefix of its mux, beside routes of its own. Every request that reaches
// the service outside the prefix is recorded as a stray: a dashboard that
// fetched an absolute path would land there.
type service struct {
	server *httptest.Server
	mu     sync.Mutex
	strays []string
}

func (s *service) stray() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.strays...)
}

// mountService serves h as mount does for the service's mux.
func mountService(t *testing.T, mount func(mux *http.ServeMux, h http.Handler), opts httpapi.Options) (*service, *pubsub.Backend) {
	t.Helper()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.Init(ctx))
	opts.Backend = b
	opts.Registry = prometheus.NewRegistry()
	s := &service{}
	mux := http.NewServeMux()
	h := httpapi.New(opts)
	t.Cleanup(h.Close)
	mount(mux, h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.strays = append(s.strays, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		http.Error(w, "the service's own 404", http.StatusNotFound)
	})
	s.server = httptest.NewServer(mux)
	t.Cleanup(s.server.Close)
	return s, b
}

func get(t *testing.T, client *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := client.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

var (
	// assetRE finds the links of index.html.
	assetRE = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	// apiCallRE finds the paths app.js passes to its api() helper.
	apiCallRE = regexp.MustCompile(`api\("(?:GET|POST)", "([^"]*)"`)
	// absoluteRE finds a string literal holding an absolute path to one
	// of the handler's own.
	absoluteRE = regexp.MustCompile("[\"'`]/(?:api|static|metrics|healthz|readyz)\\b")
)

// TestMountedUnderPrefix mounts the handler as a service does, under
// /ops/quantumflow/ with http.StripPrefix, and follows the dashboard's own
// links and fetches from the page: every one resolves under the prefix and
// answers, and none reaches the service outside it.
func TestMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	svc, b := mountService(t, func(mux *http.ServeMux, h http.Handler) {
		mux.Handle("/ops/quantumflow/", http.StripPrefix("/ops/quantumflow", h))
	}, httpapi.Options{AdminToken: token})
	ids := deadLetter(t, b, "consensus_results_queue", `{"proposal":"p-1"}`)
	client := svc.server.Client()

	// The mount point without its slash redirects to the dashboard.
	res, page := get(t, client, svc.server.URL+"/ops/quantumflow")
	require.Equal(t, http.StatusOK, res.StatusCode)
	pageURL := res.Request.URL
	require.Equal(t, "/ops/quantumflow/", pageURL.Path)
	require.Contains(t, page, "<title>QuantumFlow</title>")

	// No icon link would make browsers ask the service for /favicon.ico.
	require.Contains(t, page, `<link rel="icon" href="data:,">`)
	var links [][]string
	for _, l := range assetRE.FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(l[1], "data:") && !strings.HasPrefix(l[1], "#") {
			links = append(links, l)
		}
	}
	require.Len(t, links, 4, "the stylesheet and the three scripts")
	var script string
	for _, l := range links {
		require.False(t, strings.HasPrefix(l[1], "/"), "index.html links %s absolutely", l[1])
		u := pageURL.ResolveReference(&url.URL{Path: l[1]})
		require.True(t, strings.HasPrefix(u.Path, "/ops/quantumflow/static/"), u.Path)
		res, body := get(t, client, u.String())
		require.Equal(t, http.StatusOK, res.StatusCode, u.Path)
		if strings.HasSuffix(u.Path, ".js") {
			script += body
		}
	}
	require.NotEmpty(t, script)
	require.NotRegexp(t, absoluteRE, script, "app.js names an absolute path")
	require.Equal(t, 1, strings.Count(script, "fetch("), "app.js fetches through api() only")

	calls := apiCallRE.FindAllStringSubmatch(script, -1)
	require.NotEmpty(t, calls)
	for _, c := range calls {
		u, err := pageURL.Parse(c[1])
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(u.Path, "/ops/quantumflow/api/"), "app.js calls %s: %s", c[1], u.Path)
		if strings.HasSuffix(c[1], "/") {
			continue // "api/dlq/" + action, POSTed below
		}
		res, body := get(t, client, u.String())
		require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", u, body)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"))
		require.Equal(t, "no-store", res.Header.Get("Cache-Control"), "API answers are not cached under a prefix either")
	}

	// A mutation the way the dashboard sends it.
	retry, err := pageURL.Parse("api/dlq/retry")
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, retry.String(), strings.NewReader(`{"ids":["`+ids[0]+`"]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", bearer(token))
	req.Header.Set("Content-Type", "application/json")
	res, err = client.Do(req)
	require.NoError(t, err)
	var retried map[string]int
	require.NoError(t, json.NewDecoder(res.Body).Decode(&retried))
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, 1, retried["retried"])

	for _, p := range []string{"metrics", "healthz", "readyz"} {
		res, body := get(t, client, svc.server.URL+"/ops/quantumflow/"+p)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", p, body)
	}
	res, _ = get(t, client, svc.server.URL+"/ops/quantumflow/api/nothing")
	require.Equal(t, http.StatusNotFound, res.StatusCode, "the API's own 404")

	require.Empty(t, svc.stray(), "requests left the prefix")
}

// TestMountPoint covers the mount point itself, which http.StripPrefix
// turns into an empty path: with the prefix stripped with its slash the
// page is served there; with the handler registered for the exact path
// the request is redirected, relatively, to the path with a slash.
func TestMountPoint(t *testing.T) {
	t.Parallel()
	t.Run("StrippedWithSlash", func(t *testing.T) {
		t.Parallel()
		svc, _ := mountService(t, func(mux *http.ServeMux, h http.Handler) {
			mux.Handle("/quantumflow/", http.StripPrefix("/quantumflow/", h))
		}, httpapi.Options{})
		res, page := get(t, svc.server.Client(), svc.server.URL+"/quantumflow/")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "/quantumflow/", res.Request.URL.Path, "no redirect")
		require.Contains(t, page, "<title>QuantumFlow</title>")
		res, _ = get(t, svc.server.Client(), svc.server.URL+"/quantumflow/api/queues")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Empty(t, svc.stray())
	})
	t.Run("ExactPath", func(t *testing.T) {
		t.Parallel()
		svc, _ := mountService(t, func(mux *http.ServeMux, h http.Handler) {
			mux.Handle("/admin/queues", http.StripPrefix("/admin/queues", h))
			mux.Handle("/admin/queues/", http.StripPrefix("/admin/queues", h))
		}, httpapi.Options{})
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, _ := get(t, noFollow, svc.server.URL+"/admin/queues?tab=dlq")
		require.Equal(t, http.StatusMovedPermanently, res.StatusCode)
		require.Equal(t, "queues/?tab=dlq", res.Header.Get("Location"), "relative, so that it holds behind a proxy's own prefix")
		res, page := get(t, svc.server.Client(), svc.server.URL+"/admin/queues")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "/admin/queues/", res.Request.URL.Path)
		require.Contains(t, page, "<title>QuantumFlow</title>")
		require.Empty(t, svc.stray())
	})
}

// TestServeShutsDownWithItsContext runs Serve on a listener, serves a
// request, and checks that cancelling the context stops it without error.
func TestServeShutsDownWithItsContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- httpapi.Serve(ctx, ln, httpapi.New(httpapi.Options{})) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, body := get(t, client, "http://"+ln.Addr().String()+"/healthz")
	require.Equal(t, http.StatusOK, res.StatusCode, body)

	cancel()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(httpapi.ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	_, err = client.Get("http://" + ln.Addr().String() + "/healthz")
	require.Error(t, err, "the listener is closed")
}
