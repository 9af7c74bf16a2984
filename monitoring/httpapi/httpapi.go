// Package httpapi is QuantumFlow's operator HTTP surface: an http.Handler a
// service mounts in its own http.ServeMux (and `quantumflow serve` runs at
// the root of a server of its own, with Serve) with these paths, relative
// to where it is mounted:
//
//	GET  /metrics                      Prometheus exposition of Options.Registry
//	GET  /healthz                      alive
//	GET  /readyz                       backend reachable and storage initialised
//	GET  /api/queues                   every queue with stats, rates, and the DLQ alert state
//	GET  /api/queues/{queue}           one queue, or one instance queue QUEUE@INSTANCE
//	GET  /api/queues/{queue}/pending   pending messages (?limit=N, default 100; ?offset=N skips N)
//	POST /api/queues/{queue}/pause     pause the queue, for every process (admin)
//	POST /api/queues/{queue}/resume    resume it (admin)
//	GET  /api/messages/{id}            one message: state, attempts, last error, payload (?queue=Q)
//	DELETE /api/messages/{id}          remove a waiting message (?queue=Q; admin): 404, 409 when held
//	GET  /api/instances                the instance registry, each instance with its state
//	GET  /api/dlq                      dead letters (?queue=Q[@INSTANCE]&instance=ID&error_contains=TEXT&limit=N)
//	GET  /api/history                  the last hour of every queue summed, or of one (?queue=Q)
//	GET  /api/audit                    the audit log, newest first (?limit=N)
//	POST /api/dlq/retry                move dead letters back to their queue
//	POST /api/dlq/purge                delete dead letters
//	GET  /                             the web dashboard (embedded HTML, CSS and JS)
//
// A path asked with another method answers 405 with an Allow header; an
// unknown path under /api/ answers 404; a query parameter the endpoint does
// not read, one given twice or a query string that does not parse (a ';',
// a bad escape) answers 400 rather than being dropped; all with a JSON
// error.
//
// # Instance queues
//
// Addressed and broadcast queues keep each instance's messages in an
// instance queue, QUEUE@INSTANCE. /api/queues shows each such queue once,
// with the totals of its instance queues and each instance queue's figures
// under "instances"; /api/queues/QUEUE does the same for one queue, and
// /api/queues/QUEUE@INSTANCE (and its /pending) shows one instance queue.
// Messages and dead letters of an instance queue name their queue in
// "queue" and the instance in "instance", as the CLI's --json output does.
// /api/instances lists the instance registry with each instance's state:
// live (a heartbeat within Options.InstanceStaleAfter), stale or gone (none
// within Options.InstanceTTL), by the rules of `quantumflow instances`.
//
// # Mutations
//
// POST bodies are one JSON document selecting what to act on: {"queue":
// "Q"} for the dead letters of a queue and its instance queues ({"queue":
// "Q@I"} for one instance queue's), {"instance": "I"} for one instance's,
// {"ids": ["..."]} for some, {"error_contains": "text"} for those whose
// error contains the text, ignoring case (alone, or narrowing the others),
// {"all": true} for every one; at least one of them, so an empty body
// changes nothing. A body with anything after its
// document (a second one included) is refused with 400, and one over
// MaxBodyBytes (1 MiB) with 413, before anything changes.
//
// # Access
//
// Two roles, each with its bearer token ("Authorization: Bearer TOKEN",
// compared in constant time; Tokens reads them from the environment or
// files): admin (Options.AdminToken, QUANTUM_FLOW_ADMIN_TOKEN) for every
// mutation, and every read; read (Options.ReadToken,
// QUANTUM_FLOW_READ_TOKEN): when set, every read (the /api/ GETs and
// /metrics) needs it or the admin token. /healthz, /readyz and the
// dashboard's own files are always open. No token is 401, a wrong one 403,
// the read token on a mutation 403, and with no admin token configured
// mutations are disabled (403). Nothing mutates on GET. Bearer tokens are
// not sent by browsers on their own (the dashboard keeps its token in
// sessionStorage; no cookie is set), so a cross-site form cannot forge a
// request.
//
// # Audit log
//
// Every mutation is registered with its action's name through the admin
// wrapper, which records it in the backend's audit log
// (pubsub.Backend.RecordAudit) with the role, the client's address, the
// action, the queue, how many messages changed and what else was selected,
// before the answer is sent: see admin for the convention a mutating
// handler follows. GET /api/audit lists it.
//
// # Charts
//
// While it is open (until Close), the handler samples every queue's stats
// every Options.HistoryInterval (10s) and keeps the last hour in memory:
// GET /api/history, the dashboard's charts.
//
// When the dead letters of all queues exceed DLQAlertThreshold (default
// 100, the seed's production alert) the API and dashboard report the
// backend as degraded.
//
// # Mounting
//
// Every link and fetch of the dashboard is relative to the page, so the
// handler works under any prefix of a service's own mux, as River UI and
// Oban Web are mounted, with http.StripPrefix:
//
//	mux := http.NewServeMux()
//	admin, read, err := httpapi.Tokens(os.LookupEnv)
//	...
//	h := httpapi.New(httpapi.Options{
//		Backend: backend, Registry: reg, AdminToken: admin, ReadToken: read, Logger: logger,
//	})
//	defer h.Close()
//	mux.Handle("/quantumflow/", http.StripPrefix("/quantumflow", h))
//
// The dashboard is then /quantumflow/ (the mux redirects /quantumflow
// there), the API /quantumflow/api/..., and the metrics and health checks
// /quantumflow/metrics, /quantumflow/healthz and /quantumflow/readyz. The
// prefix may be stripped with or without its trailing slash. Without a
// read token, whoever can reach the prefix can read queues, pending
// payloads and dead letters: set one, or expose the prefix as the rest of
// the service's admin surface, not publicly. The
// dashboard refuses to be framed (X-Frame-Options, CSP frame-ancestors), so
// it is a page of its own, not a panel inside the service's pages.
package httpapi

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
)

// DefaultDLQAlertThreshold is the seed's production alert: more than 100
// dead letters.
const DefaultDLQAlertThreshold = 100

// Options configure New.
type Options struct {
	// Backend is the backend whose queues are shown and worked. Required:
	// without it every API call and /readyz answer 503.
	Backend *pubsub.Backend
	// Registry is what /metrics exposes. Defaults to
	// prometheus.DefaultGatherer.
	Registry prometheus.Gatherer
	// AdminToken is the bearer token mutating endpoints require (it
	// reads too). Empty disables mutations (they are refused).
	AdminToken string
	// ReadToken, when set, is the bearer token every read needs (the
	// API's GETs and /metrics; the health checks and the dashboard's own
	// files stay open), unless it carries the admin token. Empty leaves
	// reads open to whoever reaches the handler.
	ReadToken string
	// HistoryInterval is how often the server samples every queue's
	// stats for the charts of the last hour (GET /api/history). Defaults
	// to 10s.
	HistoryInterval time.Duration
	// DLQAlertThreshold is the number of dead letters (all queues) above
	// which the backend is reported degraded. Defaults to 100.
	DLQAlertThreshold int
	// InstanceStaleAfter is how long an instance may go without a
	// heartbeat and still be live. Defaults to DefaultInstanceStaleAfter
	// (three of a router's heartbeats).
	InstanceStaleAfter time.Duration
	// InstanceTTL is how long an instance may go without a heartbeat
	// before it is gone: pass the service's instance_ttl
	// (topology.ServiceConfig.InstanceTTL), as `quantumflow serve` does, so
	// that it agrees with the routers. Defaults to router.DefaultInstanceTTL
	// (24h).
	InstanceTTL time.Duration
	// RequestTimeout bounds each backend call. Defaults to 10s.
	RequestTimeout time.Duration
	// Logger logs mutations and refused requests (never the token). Nil
	// discards.
	Logger *slog.Logger
}

//go:embed static
var staticFS embed.FS

// staticFiles is the dashboard's files, where a name no file can have (not
// UTF-8, say: fs.ValidPath) is not there, as a missing one is: the file
// server answers 404, not 500.
type staticFiles struct{ fs.FS }

func (s staticFiles) Open(name string) (fs.File, error) {
	f, err := s.FS.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f, err
}

type api struct {
	opts              Options
	log               *slog.Logger
	adminSum, readSum [32]byte
	history           *history

	mu      sync.Mutex
	samples map[string][]sample
}

// sample is one observation of a queue, kept to compute rates.
type sample struct {
	at       time.Time
	pending  int64
	counters map[string]int64
}

// rateWindow is how far back rates look.
const rateWindow = time.Minute

// Handler is the operator HTTP surface. It samples the queues for the
// charts in the background while it is open: Close it when done.
type Handler struct {
	http.Handler
	stop func()
}

// Close stops the background sampling. The handler still serves; its
// charts no longer grow.
func (h *Handler) Close() { h.stop() }

// New returns the handler and starts sampling the queues' stats for its
// charts (stop it with Close).
func New(opts Options) *Handler {
	if opts.Registry == nil {
		opts.Registry = prometheus.DefaultGatherer
	}
	if opts.DLQAlertThreshold <= 0 {
		opts.DLQAlertThreshold = DefaultDLQAlertThreshold
	}
	if opts.InstanceStaleAfter <= 0 {
		opts.InstanceStaleAfter = DefaultInstanceStaleAfter
	}
	if opts.InstanceTTL <= 0 {
		opts.InstanceTTL = router.DefaultInstanceTTL
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.HistoryInterval <= 0 {
		opts.HistoryInterval = DefaultHistoryInterval
	}
	a := &api{opts: opts, log: opts.Logger, samples: map[string][]sample{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.adminSum, a.readSum = tokenSum(opts.AdminToken), tokenSum(opts.ReadToken)
	a.history = newHistory(opts.HistoryInterval)

	rs := newRoutes()
	rs.handle("GET", "/metrics", a.read(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{ErrorLog: slogErrorLog{a.log}})))
	rs.handle("GET", "/healthz", http.HandlerFunc(a.healthz))
	rs.handle("GET", "/readyz", http.HandlerFunc(a.readyz))
	rs.handle("GET", "/api/queues", a.read(knownParams(a.backendOr503(a.listQueues))))
	rs.handle("GET", "/api/queues/{queue}", a.read(knownParams(a.backendOr503(a.getQueue))))
	rs.handle("GET", "/api/queues/{queue}/pending", a.read(knownParams(a.backendOr503(a.listPending), "limit", "offset")))
	rs.handle("GET", "/api/instances", a.read(knownParams(a.backendOr503(a.listInstances))))
	rs.handle("GET", "/api/dlq", a.read(knownParams(a.backendOr503(a.listDLQ), "queue", "instance", "error_contains", "limit")))
	rs.handle("GET", "/api/history", a.read(knownParams(a.backendOr503(a.getHistory), "queue")))
	rs.handle("GET", "/api/audit", a.read(knownParams(a.backendOr503(a.listAudit), "limit")))
	rs.handle("GET", "/api/messages/{id}", a.read(knownParams(a.backendOr503(a.getMessage), "queue")))
	// Every mutation goes through a.admin with its action's name (see
	// admin for the convention its handler follows).
	rs.handle("POST", "/api/dlq/retry", a.admin("dlq.retry", knownParams(a.backendOr503(a.retryDLQ))))
	rs.handle("POST", "/api/dlq/purge", a.admin("dlq.purge", knownParams(a.backendOr503(a.purgeDLQ))))
	rs.handle("POST", "/api/queues/{queue}/pause", a.admin("queue.pause", knownParams(a.backendOr503(a.pauseQueue(true)))))
	rs.handle("POST", "/api/queues/{queue}/resume", a.admin("queue.resume", knownParams(a.backendOr503(a.pauseQueue(false)))))
	rs.handle("DELETE", "/api/messages/{id}", a.admin("message.delete", knownParams(a.backendOr503(a.deleteMessage), "queue")))

	sub, _ := fs.Sub(staticFS, "static")
	static := staticFiles{sub}
	rs.handle("GET", "/static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	rs.handle("GET", "/{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	}))
	mux := rs.handler("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	stop := func() {}
	if opts.Backend != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.sampleHistory(ctx)
		}()
		stop = sync.OnceFunc(func() {
			cancel()
			<-done
		})
	}
	return &Handler{Handler: mountPoint(securityHeaders(mux)), stop: stop}
}

// mountPoint adapts the paths http.StripPrefix leaves to the handler's
// own, which begin with "/". StripPrefix("/quantumflow/", ...) leaves
// "api/queues", and the mount point itself becomes "": "/quantumflow"
// under StripPrefix("/quantumflow", ...) with the handler registered for
// that exact path, or "/quantumflow/" under StripPrefix("/quantumflow/",
// ...). The dashboard's links and fetches are relative ("static/app.js",
// "api/queues"), so the page must be at a URL ending in "/": a mount point
// without one is redirected there, by a relative Location that stays right
// behind any further prefix a proxy strips. A ServeMux left alone would
// redirect both cases to absolute paths, out of the mount.
func mountPoint(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/") {
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "" {
			// RequestURI is the path the client asked for, before any
			// StripPrefix; empty for a request made in process.
			asked, _, _ := strings.Cut(r.RequestURI, "?")
			if asked != "" && !strings.HasSuffix(asked, "/") {
				loc := path.Base(asked) + "/"
				if r.URL.RawQuery != "" {
					loc += "?" + r.URL.RawQuery
				}
				w.Header().Set("Location", loc)
				w.WriteHeader(http.StatusMovedPermanently)
				return
			}
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = "/" + u.Path
		if u.RawPath != "" {
			u.RawPath = "/" + u.RawPath
		}
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/readyz" || r.URL.Path == "/healthz" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

type slogErrorLog struct{ l *slog.Logger }

func (s slogErrorLog) Println(v ...any) { s.l.Error("metrics endpoint", "error", fmt.Sprint(v...)) }

func (a *api) backendOr503(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Backend == nil {
			writeError(w, http.StatusServiceUnavailable, "no backend configured")
			return
		}
		next(w, r)
	}
}

func (a *api) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.opts.RequestTimeout)
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.opts.Backend == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "no backend configured"})
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	// Listing queues needs both a reachable backend and its storage
	// (tables, streams) in place: ErrNotInitialized otherwise.
	if _, err := a.opts.Backend.ListQueues(ctx); err != nil {
		body := map[string]string{"status": "not ready", "backend": a.opts.Backend.String(), "error": err.Error()}
		if errors.Is(err, pubsub.ErrNotInitialized) {
			body["hint"] = "run `quantumflow init`"
		}
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "backend": a.opts.Backend.String()})
}

func limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 100, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 10000 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want an integer from 1 to 10000", s))
		return 0, false
	}
	return n, true
}

func (a *api) backendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, pubsub.ErrQueueNotFound), errors.Is(err, pubsub.ErrMessageNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, pubsub.ErrMessageInFlight):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, pubsub.ErrInvalidQueueName), errors.Is(err, pubsub.ErrInvalidArgument):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, pubsub.ErrUnsupported):
		writeError(w, http.StatusNotImplemented, err.Error())
	default:
		a.log.Error("backend call failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
