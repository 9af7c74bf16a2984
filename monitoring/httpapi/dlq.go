package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/quantumflow/quantumflow/pubsub"
)

// dlqScope is which queues' dead letters a request works on, as `quantumflow
// dlq --queue QUEUE[@INSTANCE] --instance ID` chooses them. A dead letter
// of an instance's copy is filed under the instance queue, QUEUE@INSTANCE.
type dlqScope struct {
	queue    string // without instance; "" = every queue
	instance string // "" = every instance, and none
}

// newDLQScope reads a queue (QUEUE or QUEUE@INSTANCE) and an instance.
func newDLQScope(queue, instance string) (dlqScope, error) {
	if instance != "" {
		if err := pubsub.ValidateInstanceID(instance); err != nil {
			return dlqScope{}, err
		}
	}
	if queue == "" {
		return dlqScope{instance: instance}, nil
	}
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return dlqScope{}, err
	}
	q, inst := pubsub.SplitInstanceQueue(queue)
	if inst != "" && instance != "" && inst != instance {
		return dlqScope{}, fmt.Errorf("%w: queue %s is instance %s's, not %s", pubsub.ErrInvalidArgument, queue, inst, instance)
	}
	return dlqScope{queue: q, instance: cmp.Or(inst, instance)}, nil
}

// queues returns the names of the queues whose dead letters s selects:
// nil for every queue. A queue selects itself and its instance queues, an
// instance alone its queue of every queue.
func (a *api) dlqQueues(ctx context.Context, s dlqScope) ([]string, error) {
	switch {
	case s == dlqScope{}:
		return nil, nil
	case s.queue != "" && s.instance != "":
		return []string{pubsub.InstanceQueue(s.queue, s.instance)}, nil
	}
	infos, err := a.opts.Backend.ListQueues(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{}
	if s.queue != "" {
		names = append(names, s.queue)
	}
	for _, info := range infos {
		q, inst := pubsub.SplitInstanceQueue(info.Name)
		if inst != "" && (s.queue == "" || q == s.queue) && (s.instance == "" || inst == s.instance) {
			names = append(names, info.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (a *api) listDLQ(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	scope, err := newDLQScope(r.URL.Query().Get("queue"), r.URL.Query().Get("instance"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	names, err := a.dlqQueues(ctx, scope)
	if err != nil {
		a.backendError(w, err)
		return
	}
	if names == nil {
		names = []string{""}
	}
	var dls []pubsub.DeadLetter
	for _, name := range names {
		got, err := a.opts.Backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: name, Limit: limit})
		if err != nil {
			a.backendError(w, err)
			return
		}
		dls = append(dls, got...)
	}
	if len(names) > 1 {
		slices.SortStableFunc(dls, func(x, y pubsub.DeadLetter) int { return y.CreatedAt.Compare(x.CreatedAt) })
		dls = dls[:min(len(dls), limit)]
	}
	out := make([]MessageView, 0, len(dls))
	for _, d := range dls {
		v := MessageView{ID: d.ID, Metadata: d.Metadata, Attempts: d.Attempts,
			CreatedAt: d.CreatedAt, Error: d.Error, Handler: d.Handler, Service: d.Service,
			FirstFailureAt: d.FirstFailureAt, LastFailureAt: d.LastFailureAt}
		v.Queue, v.Instance = pubsub.SplitInstanceQueue(d.Queue)
		setPayload(&v, d.Payload)
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
}

// Selection is the body of POST /api/dlq/retry and /api/dlq/purge.
type Selection struct {
	// Queue selects the dead letters of one original queue and of its
	// instance queues; QUEUE@INSTANCE those of one instance queue.
	Queue string `json:"queue,omitempty"`
	// Instance selects the dead letters of one instance: of its queue of
	// Queue, or of every queue.
	Instance string `json:"instance,omitempty"`
	// IDs selects dead letters by message id (within Queue and Instance
	// when given).
	IDs []string `json:"ids,omitempty"`
	// All selects every dead letter; it must be said explicitly.
	All bool `json:"all,omitempty"`
}

const selectionWant = `{"queue": "Q"}, {"instance": "I"}, {"ids": [...]} or {"all": true}`

// selection reads the body of a retry or purge. On failure it has
// answered, and returns false.
func (a *api) selection(w http.ResponseWriter, r *http.Request) (dlqScope, []string, bool) {
	var sel Selection
	if !decodeJSON(w, r, &sel, selectionWant) {
		return dlqScope{}, nil, false
	}
	if sel.Queue == "" && sel.Instance == "" && len(sel.IDs) == 0 && !sel.All {
		writeError(w, http.StatusBadRequest, "select dead letters: "+selectionWant)
		return dlqScope{}, nil, false
	}
	if sel.All && (sel.Queue != "" || sel.Instance != "" || len(sel.IDs) > 0) {
		writeError(w, http.StatusBadRequest, `"all" cannot be combined with "queue", "instance" or "ids"`)
		return dlqScope{}, nil, false
	}
	scope, err := newDLQScope(sel.Queue, sel.Instance)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return dlqScope{}, nil, false
	}
	return scope, sel.IDs, true
}

// applyDLQ runs do over the queues the body selects and answers with how
// many dead letters it acted on, under verb.
func (a *api) applyDLQ(w http.ResponseWriter, r *http.Request, verb string, do func(context.Context, pubsub.DeadLetterQuery) (int, error)) {
	scope, ids, ok := a.selection(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	names, err := a.dlqQueues(ctx, scope)
	if err != nil {
		a.backendError(w, err)
		return
	}
	if names == nil {
		names = []string{""}
	}
	n := 0
	for _, name := range names {
		m, err := do(ctx, pubsub.DeadLetterQuery{Queue: name, IDs: ids})
		n += m
		if err != nil {
			a.log.Error("dead letters "+verb+" in part", "count", n, "queue", name, "error", err)
			a.backendError(w, fmt.Errorf("%s %d dead letters, then: %w", verb, n, err))
			return
		}
	}
	a.log.Info("dead letters "+verb, "count", n, "queue", scope.queue, "instance", scope.instance, "ids", len(ids), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{verb: n})
}

func (a *api) retryDLQ(w http.ResponseWriter, r *http.Request) {
	a.applyDLQ(w, r, "retried", a.opts.Backend.RetryDeadLetters)
}

func (a *api) purgeDLQ(w http.ResponseWriter, r *http.Request) {
	a.applyDLQ(w, r, "purged", a.opts.Backend.PurgeDeadLetters)
}
