package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Environment variables holding the tokens, or naming a file that holds
// one (the _FILE forms, for secrets mounted as files). Tokens are never
// read from flags, which other users of the host can see.
const (
	// TokenEnv holds the admin token: mutations, and every read.
	TokenEnv = "QUANTUM_FLOW_ADMIN_TOKEN"
	// TokenFileEnv names a file holding the admin token.
	TokenFileEnv = TokenEnv + "_FILE"
	// ReadTokenEnv holds the read token: when set, every read (the API's
	// GETs and /metrics) needs it or the admin token.
	ReadTokenEnv = "QUANTUM_FLOW_READ_TOKEN"
	// ReadTokenFileEnv names a file holding the read token.
	ReadTokenFileEnv = ReadTokenEnv + "_FILE"
)

// Roles of a request, as the audit log and GET /api/queues ("role") name
// them.
const (
	// RoleAdmin: the request carries the admin token.
	RoleAdmin = pubsub.AuditRoleAdmin
	// RoleRead: the request carries the read token.
	RoleRead = "read"
)

// Tokens reads the admin and read tokens with lookup (os.LookupEnv): each
// from its variable, or from the file its _FILE variable names, white
// space around it trimmed. Setting both forms of one token, a file that
// cannot be read and an empty file are errors (naming the variable and
// file, never the token). An unset token is "".
func Tokens(lookup func(string) (string, bool)) (admin, read string, err error) {
	admin, err = tokenFrom(lookup, TokenEnv, TokenFileEnv)
	if err != nil {
		return "", "", err
	}
	read, err = tokenFrom(lookup, ReadTokenEnv, ReadTokenFileEnv)
	if err != nil {
		return "", "", err
	}
	return admin, read, nil
}

func tokenFrom(lookup func(string) (string, bool), env, fileEnv string) (string, error) {
	val, _ := lookup(env)
	file, _ := lookup(fileEnv)
	val, file = strings.TrimSpace(val), strings.TrimSpace(file)
	switch {
	case val != "" && file != "":
		return "", fmt.Errorf("both %s and %s are set: use one", env, fileEnv)
	case file == "":
		return val, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file only: its content is a secret.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s: read %s: %w", fileEnv, file, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty", fileEnv, file)
	}
	return tok, nil
}

// tokenSum hashes a token for comparison: comparing hashes is constant
// time in the token's length as well as its content.
func tokenSum(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// bearer returns the request's bearer token; ok is false without one
// (no Authorization header, another scheme, an empty token).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// roleOf returns the role the request's token gives: RoleAdmin, RoleRead
// or "" (no token, or one that matches neither). Both comparisons always
// run, so the time taken does not say which token nearly matched.
func (a *api) roleOf(r *http.Request) string {
	tok, ok := bearer(r)
	if !ok {
		return ""
	}
	sum := tokenSum(tok)
	isAdmin := a.opts.AdminToken != "" && subtle.ConstantTimeCompare(sum[:], a.adminSum[:]) == 1
	isRead := a.opts.ReadToken != "" && subtle.ConstantTimeCompare(sum[:], a.readSum[:]) == 1
	switch {
	case isAdmin:
		return RoleAdmin
	case isRead:
		return RoleRead
	}
	return ""
}

// read guards a read: with a read token configured, the request needs it
// or the admin token (401 without a token, 403 with a wrong one); without
// one, reads are open.
func (a *api) read(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.ReadToken == "" {
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := bearer(r); !ok {
			a.log.Warn("read refused: no bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="quantumflow"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: reads need $"+ReadTokenEnv+" or $"+TokenEnv+" (Authorization: Bearer TOKEN)")
			return
		}
		if a.roleOf(r) == "" {
			a.log.Warn("read refused: wrong token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "wrong token: reads need the read or the admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// admin guards a mutation and records it in the audit log under action
// ("area.verb", e.g. "dlq.retry"; see pubsub.AuditEntry). The request
// needs the admin token: without a header 401, with a wrong one (the
// read token included) 403, and with no admin token configured every
// mutation is refused (403).
//
// The convention every mutating handler follows, so that the audit log
// says what happened: once it has changed something (or tried to), it
// calls reportMutation(r, Mutation{Queue: ..., Count: n, ...}), with the
// error when it failed part way. A handler that answers 2xx without
// reporting is recorded all the same, with the {queue} of its path and a
// count of 0; one that answers 4xx without reporting changed nothing and
// is not recorded. The entry is stored before the response is sent, so a
// client that lists the audit log after its mutation finds it. A failure
// to store it is logged (with the entry) and does not change the
// response: the mutation has happened.
func (a *api) admin(action string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.AdminToken == "" {
			a.log.Warn("admin request refused: no admin token configured", "action", action, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "admin operations are disabled: set "+TokenEnv)
			return
		}
		if _, ok := bearer(r); !ok {
			a.log.Warn("admin request refused: no bearer token", "action", action, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="quantumflow"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer $"+TokenEnv+")")
			return
		}
		if role := a.roleOf(r); role != RoleAdmin {
			msg := "wrong admin token"
			if role == RoleRead {
				msg = "the read token cannot change anything: use the admin token"
			}
			a.log.Warn("admin request refused: "+msg, "action", action, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, msg)
			return
		}
		rec := &mutationRecorder{header: http.Header{}}
		next(rec, r.WithContext(context.WithValue(r.Context(), mutationKey{}, rec)))
		a.audit(r, action, rec)
		rec.flush(w)
	}
}

// Mutation is what a mutating handler reports for the audit log.
type Mutation struct {
	// Queue is the queue acted on, if one.
	Queue string
	// Count is how many messages changed.
	Count int
	// Detail says what else was selected (ids, a filter).
	Detail string
	// Err is the error that stopped the mutation part way, if any.
	Err error
}

type mutationKey struct{}

// reportMutation tells the admin wrapper what the handler of r changed.
func reportMutation(r *http.Request, m Mutation) {
	if rec, ok := r.Context().Value(mutationKey{}).(*mutationRecorder); ok {
		rec.mutation, rec.reported = m, true
	}
}

// mutationRecorder holds a mutating handler's response until its audit
// entry is stored, and what the handler reported.
type mutationRecorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	mutation Mutation
	reported bool
}

func (m *mutationRecorder) Header() http.Header { return m.header }

func (m *mutationRecorder) WriteHeader(status int) {
	if m.status == 0 {
		m.status = status
	}
}

func (m *mutationRecorder) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	return m.body.Write(b)
}

func (m *mutationRecorder) flush(w http.ResponseWriter) {
	for k, v := range m.header {
		w.Header()[k] = v
	}
	w.WriteHeader(max(m.status, http.StatusOK))
	_, _ = w.Write(m.body.Bytes())
}

// audit stores the entry of a mutation that happened (reported, or
// answered 2xx).
func (a *api) audit(r *http.Request, action string, rec *mutationRecorder) {
	status := max(rec.status, http.StatusOK)
	if !rec.reported && status >= 300 {
		return
	}
	m := rec.mutation
	if !rec.reported {
		m.Queue = r.PathValue("queue")
	}
	e := pubsub.AuditEntry{Role: RoleAdmin, Remote: r.RemoteAddr, Action: action, Queue: m.Queue, Count: m.Count, Detail: m.Detail}
	if m.Err != nil {
		e.Error = m.Err.Error()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.opts.RequestTimeout)
	defer cancel()
	err := a.opts.Backend.RecordAudit(ctx, e)
	if err != nil {
		a.log.Error("audit entry not stored", "error", err, "role", e.Role, "remote", e.Remote, "action", e.Action,
			"queue", e.Queue, "count", e.Count, "detail", e.Detail, "mutation_error", e.Error)
	}
}
