package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/quantumflow/quantumflow/pubsub"
)

// maxMessageID bounds a message id in a path: ids are UUIDs or ids a
// publisher chose, never kilobytes.
const maxMessageID = 256

// pauseQueue answers POST /api/queues/{queue}/pause and /resume.
func (a *api) pauseQueue(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("queue")
		if err := pubsub.ValidateQueueName(name); err != nil {
			a.backendError(w, err)
			return
		}
		if !decodeJSON(w, r, &struct{}{}, "no body, or {}") {
			return
		}
		ctx, cancel := a.ctx(r)
		defer cancel()
		var err error
		if paused {
			err = a.opts.Backend.PauseQueue(ctx, name)
		} else {
			err = a.opts.Backend.ResumeQueue(ctx, name)
		}
		if err != nil {
			a.backendError(w, err)
			return
		}
		reportMutation(r, Mutation{Queue: name})
		a.log.Info("queue paused or resumed", "queue", name, "paused", paused, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]any{"queue": name, "paused": paused})
	}
}

// messageArgs reads the id of /api/messages/{id} and its ?queue. On
// failure it has answered, and returns false.
func messageArgs(w http.ResponseWriter, r *http.Request) (queue, id string, ok bool) {
	id, queue = r.PathValue("id"), r.URL.Query().Get("queue")
	if len(id) > maxMessageID || strings.ContainsFunc(id, func(c rune) bool { return c < ' ' }) || pubsub.ValidateMessageID(id) != nil {
		writeError(w, http.StatusBadRequest, "message id "+strconv.Quote(id)+": want 1 to 256 printable characters of UTF-8 text")
		return "", "", false
	}
	if queue != "" {
		if err := pubsub.ValidateQueueName(queue); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return "", "", false
		}
	}
	return queue, id, true
}

// getMessage answers GET /api/messages/{id}: the message, waiting, held
// or a dead letter (?queue=Q looks in one queue only).
func (a *api) getMessage(w http.ResponseWriter, r *http.Request) {
	queue, id, ok := messageArgs(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	m, err := a.opts.Backend.GetMessage(ctx, queue, id)
	if err != nil {
		a.backendError(w, err)
		return
	}
	prio := m.Priority
	v := MessageView{
		ID: m.ID, State: string(m.State), Metadata: m.Metadata, Attempts: m.Attempts, Priority: &prio,
		CreatedAt: m.CreatedAt, AvailableAt: m.AvailableAt, Error: m.LastError,
		FirstFailureAt: m.FirstFailureAt, LastFailureAt: m.LastFailureAt,
	}
	v.Queue, v.Instance = pubsub.SplitInstanceQueue(m.Queue)
	setPayload(&v, m.Payload)
	writeJSON(w, http.StatusOK, v)
}

// deleteMessage answers DELETE /api/messages/{id}: removes the waiting
// message (?queue=Q from one queue only). 404 when none waits, 409 when a
// consumer holds it.
func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request) {
	queue, id, ok := messageArgs(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	if err := a.opts.Backend.DeleteMessage(ctx, queue, id); err != nil {
		a.backendError(w, err)
		return
	}
	reportMutation(r, Mutation{Queue: queue, Count: 1, Detail: "id " + id})
	a.log.Info("message deleted", "id", id, "queue", queue, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}
