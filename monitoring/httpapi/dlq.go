package httpapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

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
	contains := r.URL.Query().Get("error_contains")
	if err := checkErrorContains(contains); err != nil {
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
		got, err := a.matchingDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: name, Limit: limit}, contains)
		if err != nil {
			a.backendError(w, err)
			return
		}
		dls = append(dls, got...)
	}
	if len(names) > 1 || contains != "" {
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
	// ErrorContains selects the dead letters whose error contains this
	// text, ignoring case (within Queue, Instance and IDs when given).
	ErrorContains string `json:"error_contains,omitempty"`
	// All selects every dead letter; it must be said explicitly.
	All bool `json:"all,omitempty"`
}

const selectionWant = `{"queue": "Q"}, {"instance": "I"}, {"ids": [...]}, {"error_contains": "text"} (alone or with the others) or {"all": true}`

// MaxFilterScan is how many dead letters of each queue an error filter
// (error_contains) looks through, newest first: a filtered retry or
// purge acts on the matches among them, and is run again for older ones.
const MaxFilterScan = 10_000

// maxErrorContains bounds error_contains.
const maxErrorContains = 1000

func checkErrorContains(s string) error {
	if len(s) > maxErrorContains {
		return fmt.Errorf("error_contains: %d bytes, more than the limit of %d", len(s), maxErrorContains)
	}
	return nil
}

// matchingDeadLetters lists the dead letters q selects whose error
// contains contains (ignoring case), at most q.Limit of them: with a
// filter, the newest MaxFilterScan are looked through.
func (a *api) matchingDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery, contains string) ([]pubsub.DeadLetter, error) {
	if contains == "" {
		return a.opts.Backend.ListDeadLetters(ctx, q)
	}
	limit := q.Limit
	q.Limit = MaxFilterScan
	all, err := a.opts.Backend.ListDeadLetters(ctx, q)
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(contains)
	out := slices.DeleteFunc(all, func(d pubsub.DeadLetter) bool { return !strings.Contains(strings.ToLower(d.Error), want) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// selection reads the body of a retry or purge. On failure it has
// answered, and returns false.
func (a *api) selection(w http.ResponseWriter, r *http.Request) (Selection, dlqScope, bool) {
	var sel Selection
	if !decodeJSON(w, r, &sel, selectionWant) {
		return sel, dlqScope{}, false
	}
	if sel.Queue == "" && sel.Instance == "" && len(sel.IDs) == 0 && sel.ErrorContains == "" && !sel.All {
		writeError(w, http.StatusBadRequest, "select dead letters: "+selectionWant)
		return sel, dlqScope{}, false
	}
	if sel.All && (sel.Queue != "" || sel.Instance != "" || len(sel.IDs) > 0 || sel.ErrorContains != "") {
		writeError(w, http.StatusBadRequest, `"all" cannot be combined with "queue", "instance", "ids" or "error_contains"`)
		return sel, dlqScope{}, false
	}
	for _, id := range sel.IDs {
		if err := pubsub.ValidateMessageID(id); err != nil {
			writeError(w, http.StatusBadRequest, `"ids": `+err.Error())
			return sel, dlqScope{}, false
		}
	}
	if err := checkErrorContains(sel.ErrorContains); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sel, dlqScope{}, false
	}
	scope, err := newDLQScope(sel.Queue, sel.Instance)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return sel, dlqScope{}, false
	}
	return sel, scope, true
}

// describe is the selection beyond its queue, for the audit log.
func (s Selection) describe() string {
	var parts []string
	if s.Instance != "" {
		parts = append(parts, "instance="+s.Instance)
	}
	if len(s.IDs) > 0 {
		parts = append(parts, "ids="+strconv.Itoa(len(s.IDs)))
	}
	if s.ErrorContains != "" {
		parts = append(parts, "error_contains="+strconv.Quote(s.ErrorContains))
	}
	if s.All {
		parts = append(parts, "all")
	}
	return strings.Join(parts, " ")
}

// applyDLQ runs do over the queues the body selects and answers with how
// many dead letters it acted on, under verb.
func (a *api) applyDLQ(w http.ResponseWriter, r *http.Request, verb string, do func(context.Context, pubsub.DeadLetterQuery) (int, error)) {
	sel, scope, ok := a.selection(w, r)
	if !ok {
		return
	}
	ids := sel.IDs
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
		m, err := a.applyDLQTo(ctx, pubsub.DeadLetterQuery{Queue: name, IDs: ids}, sel.ErrorContains, do)
		n += m
		if err != nil {
			err = fmt.Errorf("%s %d dead letters, then: %w", verb, n, err)
			reportMutation(r, Mutation{Queue: sel.Queue, Count: n, Detail: sel.describe(), Err: err})
			a.log.Error("dead letters "+verb+" in part", "count", n, "queue", name, "error", err)
			a.backendError(w, err)
			return
		}
	}
	reportMutation(r, Mutation{Queue: sel.Queue, Count: n, Detail: sel.describe()})
	a.log.Info("dead letters "+verb, "count", n, "queue", scope.queue, "instance", scope.instance, "ids", len(ids),
		"error_contains", sel.ErrorContains, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]int{verb: n})
}

// applyDLQTo runs do on q's dead letters, or, with an error filter, on
// those of them whose error matches (their ids, as listed now: what is
// dead-lettered meanwhile is left alone).
func (a *api) applyDLQTo(ctx context.Context, q pubsub.DeadLetterQuery, contains string, do func(context.Context, pubsub.DeadLetterQuery) (int, error)) (int, error) {
	if contains == "" {
		return do(ctx, q)
	}
	matched, err := a.matchingDeadLetters(ctx, q, contains)
	if err != nil || len(matched) == 0 {
		return 0, err
	}
	q.IDs = make([]string, len(matched))
	for i, d := range matched {
		q.IDs[i] = d.ID
	}
	return do(ctx, q)
}

func (a *api) retryDLQ(w http.ResponseWriter, r *http.Request) {
	a.applyDLQ(w, r, "retried", a.opts.Backend.RetryDeadLetters)
}

func (a *api) purgeDLQ(w http.ResponseWriter, r *http.Request) {
	a.applyDLQ(w, r, "purged", a.opts.Backend.PurgeDeadLetters)
}
