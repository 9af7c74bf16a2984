// Package httpapi is QuantumFlow's operator HTTP surface: an http.Handler a
// service mounts in its own http.ServeMux (and `quantumflow serve` runs at
// the root of a server of its own, with Serve) with these paths, relative
// to where it is mounted:
//
//	GET  /metrics                      Prometheus exposition of Options.Registry
//	GET  /healthz                      alive
//	GET  /readyz                       backend reachable and storage initialised
//	GET  /api/queues                   every queue with stats, rates, and the DLQ alert state
//	GET  /api/queues/{queue}           one queue
//	GET  /api/queues/{queue}/pending   pending messages (?limit=N, default 100)
//	GET  /api/dlq                      dead letters (?queue=Q&limit=N)
//	POST /api/dlq/retry                move dead letters back to their queue
//	POST /api/dlq/purge                delete dead letters
//	GET  /                             the web dashboard (embedded HTML and JS)
//
// POST bodies are JSON selecting what to act on: {"queue": "Q"} for one
// queue's dead letters, {"ids": ["..."]} for some, {"all": true} for
// every one; at least one of them, so an empty body changes nothing.
//
// Every mutating endpoint requires "Authorization: Bearer TOKEN" with the
// configured admin token (QUANTUM_FLOW_ADMIN_TOKEN), compared in constant
// time: no header is 401, a wrong token 403, and with no token configured
// mutations are disabled (403). Nothing mutates on GET. Bearer tokens are
// not sent by browsers on their own, so a cross-site form cannot forge a
// mutation.
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
//	mux.Handle("/quantumflow/", http.StripPrefix("/quantumflow", httpapi.New(httpapi.Options{
//		Backend: backend, Registry: reg, AdminToken: os.Getenv(httpapi.TokenEnv), Logger: logger,
//	})))
//
// The dashboard is then /quantumflow/ (the mux redirects /quantumflow
// there), the API /quantumflow/api/..., and the metrics and health checks
// /quantumflow/metrics, /quantumflow/healthz and /quantumflow/readyz. The
// prefix may be stripped with or without its trailing slash. Whoever can
// reach the prefix can read queues, pending payloads and dead letters:
// expose it as the rest of the service's admin surface, not publicly. The
// dashboard refuses to be framed (X-Frame-Options, CSP frame-ancestors), so
// it is a page of its own, not a panel inside the service's pages.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quantumflow/quantumflow/pubsub"
)

// DefaultDLQAlertThreshold is the seed's production alert: more than 100
// dead letters.
const DefaultDLQAlertThreshold = 100

// TokenEnv is the environment variable that holds the admin token.
const TokenEnv = "QUANTUM_FLOW_ADMIN_TOKEN"

// Options configure New.
type Options struct {
	// Backend is the backend whose queues are shown and worked. Required:
	// without it every API call and /readyz answer 503.
	Backend *pubsub.Backend
	// Registry is what /metrics exposes. Defaults to
	// prometheus.DefaultGatherer.
	Registry prometheus.Gatherer
	// AdminToken is the bearer token mutating endpoints require. Empty
	// disables mutations (they are refused).
	AdminToken string
	// DLQAlertThreshold is the number of dead letters (all queues) above
	// which the backend is reported degraded. Defaults to 100.
	DLQAlertThreshold int
	// RequestTimeout bounds each backend call. Defaults to 10s.
	RequestTimeout time.Duration
	// Logger logs mutations and refused requests (never the token). Nil
	// discards.
	Logger *slog.Logger
}

//go:embed static
var staticFS embed.FS

// maxBody caps request bodies: selections are small.
const maxBody = 1 << 20

type api struct {
	opts     Options
	log      *slog.Logger
	tokenSum [32]byte

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

// New returns the handler.
func New(opts Options) http.Handler {
	if opts.Registry == nil {
		opts.Registry = prometheus.DefaultGatherer
	}
	if opts.DLQAlertThreshold <= 0 {
		opts.DLQAlertThreshold = DefaultDLQAlertThreshold
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	a := &api{opts: opts, log: opts.Logger, samples: map[string][]sample{}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.tokenSum = sha256.Sum256([]byte(opts.AdminToken))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{ErrorLog: slogErrorLog{a.log}}))
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /api/queues", a.backendOr503(a.listQueues))
	mux.HandleFunc("GET /api/queues/{queue}", a.backendOr503(a.getQueue))
	mux.HandleFunc("GET /api/queues/{queue}/pending", a.backendOr503(a.listPending))
	mux.HandleFunc("GET /api/dlq", a.backendOr503(a.listDLQ))
	mux.HandleFunc("POST /api/dlq/retry", a.admin(a.backendOr503(a.retryDLQ)))
	mux.HandleFunc("POST /api/dlq/purge", a.admin(a.backendOr503(a.purgeDLQ)))
	for _, p := range []string{"/api/dlq/retry", "/api/dlq/purge"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": use POST")
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})

	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	return mountPoint(securityHeaders(mux))
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

// admin refuses a request without the admin bearer token.
func (a *api) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.AdminToken == "" {
			a.log.Warn("admin request refused: no admin token configured", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "admin operations are disabled: set "+TokenEnv)
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(auth, " ")
		if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
			a.log.Warn("admin request refused: no bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="quantumflow"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer $"+TokenEnv+")")
			return
		}
		// Hashing first makes the comparison constant-time in the token's
		// length as well as its content.
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
			a.log.Warn("admin request refused: wrong token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "wrong admin token")
			return
		}
		next(w, r)
	}
}

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

// QueueView is a queue as the API shows it.
type QueueView struct {
	Name             string           `json:"name"`
	Priority         pubsub.Priority  `json:"priority"`
	MaxRetries       int              `json:"max_retries"`
	RetryDelayMS     int64            `json:"retry_delay_ms"`
	Pending          int64            `json:"pending"`
	InFlight         int64            `json:"in_flight"`
	Scheduled        int64            `json:"scheduled"`
	DeadLetters      int64            `json:"dead_letters"`
	OldestPendingAge float64          `json:"oldest_pending_age_seconds"`
	Counters         map[string]int64 `json:"counters,omitempty"`
	// Rates are per-second changes over the last minute of observations:
	// "pending" (the depth's trend) and each counter the backend keeps.
	// Absent until two observations a second apart exist.
	Rates map[string]float64 `json:"rates,omitempty"`
}

// Overview is the answer of GET /api/queues.
type Overview struct {
	Backend      string      `json:"backend"`
	Capabilities string      `json:"capabilities"`
	Queues       []QueueView `json:"queues"`
	DeadLetters  int64       `json:"dead_letters"`
	Threshold    int         `json:"dlq_alert_threshold"`
	Degraded     bool        `json:"degraded"`
	AdminEnabled bool        `json:"admin_enabled"`
	At           time.Time   `json:"at"`
}

func (a *api) overview(ctx context.Context) (Overview, error) {
	b := a.opts.Backend
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return Overview{}, err
	}
	ov := Overview{
		Backend: b.String(), Capabilities: b.Capabilities().String(),
		Threshold: a.opts.DLQAlertThreshold, AdminEnabled: a.opts.AdminToken != "",
		Queues: make([]QueueView, 0, len(infos)), At: time.Now().UTC(),
	}
	for _, info := range infos {
		st, err := b.Stats(ctx, info.Name)
		if errors.Is(err, pubsub.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return Overview{}, err
		}
		v := a.view(info, st)
		ov.Queues = append(ov.Queues, v)
		ov.DeadLetters += v.DeadLetters
	}
	ov.Degraded = ov.DeadLetters > int64(ov.Threshold)
	return ov, nil
}

func (a *api) view(info pubsub.QueueInfo, st pubsub.QueueStats) QueueView {
	return QueueView{
		Name: info.Name, Priority: info.Priority, MaxRetries: info.MaxRetries,
		RetryDelayMS: info.RetryDelay.Milliseconds(),
		Pending:      st.Pending, InFlight: st.InFlight, Scheduled: st.Scheduled,
		DeadLetters: st.DeadLetters, OldestPendingAge: st.OldestPendingAge.Seconds(),
		Counters: st.Counters, Rates: a.observe(info.Name, st),
	}
}

// observe records st and returns rates against the oldest observation in
// the window. Observations come from whoever asks (dashboards refreshing),
// at most one a second is kept.
func (a *api) observe(queue string, st pubsub.QueueStats) map[string]float64 {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.samples[queue]
	for len(ss) > 0 && now.Sub(ss[0].at) > rateWindow {
		ss = ss[1:]
	}
	if len(ss) == 0 || now.Sub(ss[len(ss)-1].at) >= time.Second {
		counters := make(map[string]int64, len(st.Counters))
		for k, v := range st.Counters {
			counters[k] = v
		}
		ss = append(ss, sample{at: now, pending: st.Pending, counters: counters})
	}
	a.samples[queue] = ss
	first := ss[0]
	dt := now.Sub(first.at).Seconds()
	if dt < 1 {
		return nil
	}
	rates := map[string]float64{"pending": round2(float64(st.Pending-first.pending) / dt)}
	for k, v := range st.Counters {
		if old, ok := first.counters[k]; ok && v >= old {
			rates[k] = round2(float64(v-old) / dt)
		}
	}
	return rates
}

func round2(f float64) float64 { return float64(int64(f*100+0.5*sign(f))) / 100 }

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

func (a *api) listQueues(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	ov, err := a.overview(ctx)
	if err != nil {
		a.backendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ov)
}

func (a *api) getQueue(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	queue := r.PathValue("queue")
	st, err := a.opts.Backend.Stats(ctx, queue)
	if err != nil {
		a.backendError(w, err)
		return
	}
	info := pubsub.QueueInfo{Name: queue}
	if infos, err := a.opts.Backend.ListQueues(ctx); err == nil {
		for _, i := range infos {
			if i.Name == queue {
				info = i
			}
		}
	}
	writeJSON(w, http.StatusOK, a.view(info, st))
}

// MessageView is a pending message or dead letter as the API shows it.
// Payload is the payload itself when it is JSON, a string when it is
// other UTF-8 text; PayloadBase64 holds binary payloads.
type MessageView struct {
	ID             string            `json:"id"`
	Queue          string            `json:"queue"`
	Payload        json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64  []byte            `json:"payload_base64,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Attempts       int               `json:"attempts"`
	Priority       *pubsub.Priority  `json:"priority,omitempty"`
	CreatedAt      time.Time         `json:"created_at,omitzero"`
	AvailableAt    time.Time         `json:"available_at,omitzero"`
	Error          string            `json:"error,omitempty"`
	Handler        string            `json:"handler,omitempty"`
	Service        string            `json:"service,omitempty"`
	FirstFailureAt time.Time         `json:"first_failure_at,omitzero"`
	LastFailureAt  time.Time         `json:"last_failure_at,omitzero"`
}

func setPayload(v *MessageView, p []byte) {
	switch {
	case len(p) == 0:
	case json.Valid(p):
		v.Payload = json.RawMessage(p)
	case utf8.Valid(p):
		s, _ := json.Marshal(string(p))
		v.Payload = s
	default:
		v.PayloadBase64 = p
	}
}

func (a *api) listPending(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	queue := r.PathValue("queue")
	msgs, err := a.opts.Backend.ListPending(ctx, queue, limit)
	if err != nil {
		a.backendError(w, err)
		return
	}
	out := make([]MessageView, 0, len(msgs))
	for _, m := range msgs {
		prio := m.Priority
		v := MessageView{ID: m.ID, Queue: m.Queue, Metadata: m.Metadata, Attempts: m.Attempts,
			Priority: &prio, CreatedAt: m.CreatedAt, AvailableAt: m.AvailableAt}
		setPayload(&v, m.Payload)
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": queue, "messages": out})
}

func (a *api) listDLQ(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	q := pubsub.DeadLetterQuery{Queue: r.URL.Query().Get("queue"), Limit: limit}
	dls, err := a.opts.Backend.ListDeadLetters(ctx, q)
	if err != nil {
		a.backendError(w, err)
		return
	}
	out := make([]MessageView, 0, len(dls))
	for _, d := range dls {
		v := MessageView{ID: d.ID, Queue: d.Queue, Metadata: d.Metadata, Attempts: d.Attempts,
			CreatedAt: d.CreatedAt, Error: d.Error, Handler: d.Handler, Service: d.Service,
			FirstFailureAt: d.FirstFailureAt, LastFailureAt: d.LastFailureAt}
		setPayload(&v, d.Payload)
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
}

// Selection is the body of POST /api/dlq/retry and /api/dlq/purge.
type Selection struct {
	// Queue selects the dead letters of one original queue.
	Queue string `json:"queue,omitempty"`
	// IDs selects dead letters by message id.
	IDs []string `json:"ids,omitempty"`
	// All selects every dead letter; it must be said explicitly.
	All bool `json:"all,omitempty"`
}

func (a *api) selection(w http.ResponseWriter, r *http.Request) (pubsub.DeadLetterQuery, bool) {
	var sel Selection
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sel); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: "+err.Error()+` (want {"queue": "Q"}, {"ids": [...]} or {"all": true})`)
		return pubsub.DeadLetterQuery{}, false
	}
	if sel.Queue == "" && len(sel.IDs) == 0 && !sel.All {
		writeError(w, http.StatusBadRequest, `select dead letters: {"queue": "Q"}, {"ids": [...]} or {"all": true}`)
		return pubsub.DeadLetterQuery{}, false
	}
	if sel.All && (sel.Queue != "" || len(sel.IDs) > 0) {
		writeError(w, http.StatusBadRequest, `"all" cannot be combined with "queue" or "ids"`)
		return pubsub.DeadLetterQuery{}, false
	}
	return pubsub.DeadLetterQuery{Queue: sel.Queue, IDs: sel.IDs}, true
}

func (a *api) retryDLQ(w http.ResponseWriter, r *http.Request) {
	q, ok := a.selection(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	n, err := a.opts.Backend.RetryDeadLetters(ctx, q)
	if err != nil {
		a.backendError(w, err)
		return
	}
	a.log.Info("dead letters retried", "count", n, "queue", q.Queue, "ids", len(q.IDs), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
}

func (a *api) purgeDLQ(w http.ResponseWriter, r *http.Request) {
	q, ok := a.selection(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	n, err := a.opts.Backend.PurgeDeadLetters(ctx, q)
	if err != nil {
		a.backendError(w, err)
		return
	}
	a.log.Info("dead letters purged", "count", n, "queue", q.Queue, "ids", len(q.IDs), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
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
	case errors.Is(err, pubsub.ErrQueueNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, pubsub.ErrInvalidQueueName):
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
