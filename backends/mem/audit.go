package mem

import (
	"context"
	"slices"
	"sync"

	"github.com/quantumflow/quantumflow/pubsub"
)

// auditLog is a storage's audit log, oldest first. It lives as long as
// the storage, like its queues.
type auditLog struct {
	mu      sync.Mutex
	entries []pubsub.AuditEntry
}

var _ pubsub.AuditStore = (*driver)(nil)

// AppendAudit adds e at the end of the log.
func (d *driver) AppendAudit(_ context.Context, e pubsub.AuditEntry) error {
	l := &d.st.audit
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	return nil
}

// ListAudit returns the last limit entries, newest first.
func (d *driver) ListAudit(_ context.Context, limit int) ([]pubsub.AuditEntry, error) {
	l := &d.st.audit
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.entries[max(0, len(l.entries)-limit):])
	slices.Reverse(out)
	return out, nil
}
