package httpapi

import (
	"net/http"

	"github.com/quantumflow/quantumflow/pubsub"
)

// AuditList is the answer of GET /api/audit: the audit log's last
// entries, newest first.
type AuditList struct {
	Entries []pubsub.AuditEntry `json:"entries"`
}

// listAudit answers GET /api/audit[?limit=N]: 501 on a backend without an
// audit log.
func (a *api) listAudit(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	es, err := a.opts.Backend.Audit(ctx, limit)
	if err != nil {
		a.backendError(w, err)
		return
	}
	if es == nil {
		es = []pubsub.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, AuditList{Entries: es})
}
