package pubsub

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The audit log records every operator mutation (a dead-letter retry or
// purge, a pause, a removal...) with who asked, from where, what it did
// and to how many messages. It is kept in the backend, beside the queues
// (a table on PostgreSQL, a stream on NATS, memory on mem), so that every
// process serving the dashboard, and the CLI, writes to and reads one log.

// Audit roles: who made a mutation.
const (
	// AuditRoleAdmin is a request of the HTTP API with the admin token.
	AuditRoleAdmin = "admin"
	// AuditRoleCLI is the quantumflow command line tool.
	AuditRoleCLI = "cli"
)

// Limits of an audit entry's free-text fields: longer text is cut (and
// marked with "…") so that an entry stays small whatever a request said.
const (
	maxAuditText   = 1024
	maxAuditRemote = 128
)

// DefaultAuditLimit is how many entries Audit returns when asked for 0;
// MaxAuditLimit is the most it returns.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 10_000
)

// AuditEntry is one mutation in the audit log.
type AuditEntry struct {
	// At is when the mutation finished; RecordAudit sets it when zero.
	At time.Time `json:"at"`
	// Role is who asked: AuditRoleAdmin, AuditRoleCLI, or another word
	// of the same shape for a caller of the library.
	Role string `json:"role"`
	// Remote is the client's address (HTTP) or user@host (CLI).
	Remote string `json:"remote,omitempty"`
	// Action names the mutation, "area.verb": dlq.retry, dlq.purge,
	// queue.pause, message.delete...
	Action string `json:"action"`
	// Queue is the queue acted on (QUEUE or QUEUE@INSTANCE); empty when
	// the mutation was not about one queue.
	Queue string `json:"queue,omitempty"`
	// Count is how many messages the mutation changed.
	Count int `json:"count"`
	// Detail says what was selected beyond the queue (ids, a filter).
	Detail string `json:"detail,omitempty"`
	// Error is set when the mutation failed part way: Count messages were
	// changed before it.
	Error string `json:"error,omitempty"`
}

// AuditStore is the audit log's storage, an optional driver interface
// (as InstanceStore): without it RecordAudit and Audit return
// ErrUnsupported.
type AuditStore interface {
	// AppendAudit adds e (validated, At set) at the end of the log.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// ListAudit returns the last limit entries (1 to MaxAuditLimit),
	// newest first.
	ListAudit(ctx context.Context, limit int) ([]AuditEntry, error)
}

var auditWordRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// validate checks e's role and action and bounds its text.
func (e *AuditEntry) validate() error {
	if len(e.Role) > 32 || !auditWordRE.MatchString(e.Role) {
		return fmt.Errorf("%w: audit role %q: want a lower-case word such as %q", ErrInvalidArgument, e.Role, AuditRoleAdmin)
	}
	if len(e.Action) > 64 || !auditWordRE.MatchString(e.Action) {
		return fmt.Errorf("%w: audit action %q: want lower-case words joined by '.', such as \"dlq.retry\"", ErrInvalidArgument, e.Action)
	}
	if e.Count < 0 {
		return fmt.Errorf("%w: audit count %d is negative", ErrInvalidArgument, e.Count)
	}
	e.Remote = cutText(e.Remote, maxAuditRemote)
	e.Queue = cutText(e.Queue, maxAuditRemote)
	e.Detail = cutText(e.Detail, maxAuditText)
	e.Error = cutText(e.Error, maxAuditText)
	return nil
}

// cutText makes s valid UTF-8 of at most n bytes.
func cutText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// auditStore returns the driver's audit log.
func (b *Backend) auditStore(op string) (AuditStore, error) {
	if b.engine.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	st, ok := b.engine.d.(AuditStore)
	if !ok {
		return nil, fmt.Errorf("%s: %w: audit log", op, ErrUnsupported)
	}
	return st, nil
}

// RecordAudit adds e to the audit log. Its At defaults to now; an invalid
// role or action wraps ErrInvalidArgument, and text fields too long are
// cut.
func (b *Backend) RecordAudit(ctx context.Context, e AuditEntry) error {
	st, err := b.auditStore("record audit")
	if err != nil {
		return err
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("record audit: %w", err)
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC()
	return b.engine.wrap("record audit", "", st.AppendAudit(ctx, e))
}

// Audit returns the last limit entries of the audit log, newest first:
// DefaultAuditLimit when limit is 0, at most MaxAuditLimit.
func (b *Backend) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	st, err := b.auditStore("list audit")
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	if limit < 1 || limit > MaxAuditLimit {
		return nil, fmt.Errorf("list audit: %w: limit %d: want 1 to %d", ErrInvalidArgument, limit, MaxAuditLimit)
	}
	es, err := st.ListAudit(ctx, limit)
	return es, b.engine.wrap("list audit", "", err)
}
