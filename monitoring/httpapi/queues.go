package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/quantumflow/quantumflow/pubsub"
)

// QueueView is a queue as the API shows it.
//
// Addressed and broadcast queues keep each instance's messages in an
// instance queue, QUEUE@INSTANCE. The API shows such a queue once, under
// its name, with the totals of its instance queues (and of the queue
// itself, where anything waits in it), and each instance queue's own
// figures in Instances.
type QueueView struct {
	Name string `json:"name"`
	// Instance is the instance of an instance queue's view (Name is then
	// its queue's); empty for a queue.
	Instance         string          `json:"instance,omitempty"`
	Priority         pubsub.Priority `json:"priority"`
	MaxRetries       int             `json:"max_retries"`
	RetryDelayMS     int64           `json:"retry_delay_ms"`
	Pending          int64           `json:"pending"`
	InFlight         int64           `json:"in_flight"`
	Scheduled        int64           `json:"scheduled"`
	DeadLetters      int64           `json:"dead_letters"`
	OldestPendingAge float64         `json:"oldest_pending_age_seconds"`
	// Paused is true while the queue is paused (POST .../pause).
	Paused   bool             `json:"paused"`
	Counters map[string]int64 `json:"counters,omitempty"`
	// Rates are per-second changes over the last minute of observations:
	// "pending" (the depth's trend) and each counter the backend keeps.
	// Absent until two observations a second apart exist.
	Rates map[string]float64 `json:"rates,omitempty"`
	// Instances are the queue's instance queues, by instance id, when it
	// has any; the figures above are then their totals. What waits in
	// the queue itself, if anything, is the entry without an instance.
	Instances []QueueView `json:"instances,omitempty"`
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
	// ReadTokenRequired says reads need a token (a read token is set).
	ReadTokenRequired bool `json:"read_token_required"`
	// Role is what the request's token allows: "admin", "read", or ""
	// (no token, or one that matches neither).
	Role string    `json:"role"`
	At   time.Time `json:"at"`
}

// queueGroup is a queue and its instance queues, as ListQueues knows them.
type queueGroup struct {
	name      string
	own       *pubsub.QueueInfo  // the queue itself, when listed
	instances []pubsub.QueueInfo // by instance id
}

// groupQueues groups infos by queue, ordered by queue name. Listing order
// is not enough: "q-x" sorts between "q" and "q@a".
func groupQueues(infos []pubsub.QueueInfo) []*queueGroup {
	byName := map[string]*queueGroup{}
	var groups []*queueGroup
	for _, info := range infos {
		queue, instance := pubsub.SplitInstanceQueue(info.Name)
		g := byName[queue]
		if g == nil {
			g = &queueGroup{name: queue}
			byName[queue] = g
			groups = append(groups, g)
		}
		if instance == "" {
			g.own = &info
		} else {
			g.instances = append(g.instances, info)
		}
	}
	slices.SortFunc(groups, func(a, b *queueGroup) int { return cmp.Compare(a.name, b.name) })
	for _, g := range groups {
		slices.SortFunc(g.instances, func(a, b pubsub.QueueInfo) int { return cmp.Compare(a.Name, b.Name) })
	}
	return groups
}

// groupView returns g's view: a queue's own, or the totals of its
// instance queues with each one's. ok is false when every queue of g was
// removed since it was listed.
func (a *api) groupView(ctx context.Context, g *queueGroup) (v QueueView, ok bool, err error) {
	type part struct {
		info pubsub.QueueInfo
		st   pubsub.QueueStats
	}
	var parts []part
	for _, info := range append([]pubsub.QueueInfo{{}}, g.instances...) {
		if info.Name == "" {
			if g.own == nil {
				continue
			}
			info = *g.own
		}
		st, err := a.opts.Backend.Stats(ctx, info.Name)
		if errors.Is(err, pubsub.ErrQueueNotFound) {
			continue // removed between the listing and now
		}
		if err != nil {
			return QueueView{}, false, err
		}
		parts = append(parts, part{info, st})
	}
	switch {
	case len(parts) == 0:
		return QueueView{}, false, nil
	case len(g.instances) == 0:
		return a.view(parts[0].info, parts[0].st, parts[0].info.Name), true, nil
	}
	// The queue's settings are its own, else its instance queues' (which
	// are declared with them).
	info := parts[0].info
	info.Name = g.name
	total := pubsub.QueueStats{Queue: g.name, Counters: map[string]int64{}}
	views := []QueueView{}
	for _, p := range parts {
		st := p.st
		if p.info.Name == g.name && st.Pending+st.InFlight+st.Scheduled+st.DeadLetters == 0 {
			continue // nothing waits in the queue itself, as routers publish
		}
		views = append(views, a.view(p.info, st, p.info.Name))
		total.Pending += st.Pending
		total.InFlight += st.InFlight
		total.Scheduled += st.Scheduled
		total.DeadLetters += st.DeadLetters
		total.OldestPendingAge = max(total.OldestPendingAge, st.OldestPendingAge)
		total.Paused = total.Paused || st.Paused
		for k, n := range st.Counters {
			total.Counters[k] += n
		}
	}
	if len(total.Counters) == 0 {
		total.Counters = nil
	}
	// The totals' rates are kept apart from the queue's own: "@" is in no
	// queue name.
	v = a.view(info, total, g.name+pubsub.InstanceSeparator)
	v.Instances = views
	return v, true, nil
}

func (a *api) overview(ctx context.Context) (Overview, error) {
	b := a.opts.Backend
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return Overview{}, err
	}
	ov := Overview{
		Backend: b.String(), Capabilities: b.Capabilities().String(),
		Threshold: a.opts.DLQAlertThreshold, AdminEnabled: a.opts.AdminToken != "", ReadTokenRequired: a.opts.ReadToken != "",
		Queues: []QueueView{}, At: time.Now().UTC(),
	}
	for _, g := range groupQueues(infos) {
		v, ok, err := a.groupView(ctx, g)
		if err != nil {
			return Overview{}, err
		}
		if !ok {
			continue // removed between the listing and now
		}
		ov.Queues = append(ov.Queues, v)
		ov.DeadLetters += v.DeadLetters
	}
	ov.Degraded = ov.DeadLetters > int64(ov.Threshold)
	return ov, nil
}

// view is one queue's view; an instance queue's names its queue and
// instance. Its rates are kept under key.
func (a *api) view(info pubsub.QueueInfo, st pubsub.QueueStats, key string) QueueView {
	queue, instance := pubsub.SplitInstanceQueue(info.Name)
	return QueueView{
		Name: queue, Instance: instance, Priority: info.Priority, MaxRetries: info.MaxRetries,
		RetryDelayMS: info.RetryDelay.Milliseconds(),
		Pending:      st.Pending, InFlight: st.InFlight, Scheduled: st.Scheduled,
		DeadLetters: st.DeadLetters, OldestPendingAge: st.OldestPendingAge.Seconds(), Paused: st.Paused,
		Counters: st.Counters, Rates: a.observe(key, st),
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
	ov.Role = a.roleOf(r)
	writeJSON(w, http.StatusOK, ov)
}

// getQueue answers GET /api/queues/{queue}: a queue, with its instance
// queues when it has any, or one instance queue, QUEUE@INSTANCE.
func (a *api) getQueue(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	name := r.PathValue("queue")
	if err := pubsub.ValidateQueueName(name); err != nil {
		a.backendError(w, err)
		return
	}
	infos, err := a.opts.Backend.ListQueues(ctx)
	if err != nil {
		a.backendError(w, err)
		return
	}
	queue, instance := pubsub.SplitInstanceQueue(name)
	if instance == "" {
		for _, g := range groupQueues(infos) {
			if g.name != queue {
				continue
			}
			v, ok, err := a.groupView(ctx, g)
			if err != nil {
				a.backendError(w, err)
				return
			}
			if ok {
				writeJSON(w, http.StatusOK, v)
				return
			}
		}
	}
	// A queue the listing does not show may still be known (used without
	// a declaration): the backend says.
	st, err := a.opts.Backend.Stats(ctx, name)
	if err != nil {
		a.backendError(w, err)
		return
	}
	info := pubsub.QueueInfo{Name: name}
	for _, i := range infos {
		if i.Name == name {
			info = i
		}
	}
	writeJSON(w, http.StatusOK, a.view(info, st, name))
}

// instanceQueues returns the names of queue's instance queues, by
// instance id.
func instanceQueues(infos []pubsub.QueueInfo, queue string) []string {
	var names []string
	for _, info := range infos {
		if q, inst := pubsub.SplitInstanceQueue(info.Name); q == queue && inst != "" {
			names = append(names, info.Name)
		}
	}
	slices.Sort(names)
	return names
}

// MessageView is a pending message or dead letter as the API shows it.
// Payload is the payload itself when it is JSON, a string when it is
// other UTF-8 text; PayloadBase64 holds binary payloads. A message of an
// instance queue names its queue in Queue and the instance in Instance,
// as `quantumflow pending --json` and `dlq list --json` do.
type MessageView struct {
	ID       string `json:"id"`
	Queue    string `json:"queue"`
	Instance string `json:"instance,omitempty"`
	// State is where the message is, in GET /api/messages/{id}: pending,
	// scheduled, in_flight or dead_letter.
	State          string            `json:"state,omitempty"`
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

// listPending answers GET /api/queues/{queue}/pending: one queue's or
// instance queue's messages in delivery order; for a queue with instance
// queues, the queue's own and then each instance queue's in turn, by
// instance, up to the limit in all (as `quantumflow pending` lists them).
func (a *api) listPending(w http.ResponseWriter, r *http.Request) {
	limit, ok := limitParam(w, r)
	if !ok {
		return
	}
	offset, ok := offsetParam(w, r)
	if !ok {
		return
	}
	// A page is the messages after offset: read up to offset+limit, and
	// one more to say whether another page follows.
	want := offset + limit + 1
	ctx, cancel := a.ctx(r)
	defer cancel()
	name := r.PathValue("queue")
	if err := pubsub.ValidateQueueName(name); err != nil {
		a.backendError(w, err)
		return
	}
	names := []string{name}
	if _, instance := pubsub.SplitInstanceQueue(name); instance == "" {
		infos, err := a.opts.Backend.ListQueues(ctx)
		if err != nil {
			a.backendError(w, err)
			return
		}
		names = append(names, instanceQueues(infos, name)...)
	}
	out := []MessageView{}
	for i, n := range names {
		if len(out) >= want {
			break
		}
		msgs, err := a.opts.Backend.ListPending(ctx, n, want-len(out))
		if errors.Is(err, pubsub.ErrQueueNotFound) && i == 0 && len(names) > 1 {
			continue // the queue itself is not needed to list its instances'
		}
		if err != nil {
			a.backendError(w, err)
			return
		}
		for _, m := range msgs {
			prio := m.Priority
			v := MessageView{ID: m.ID, Metadata: m.Metadata, Attempts: m.Attempts,
				Priority: &prio, CreatedAt: m.CreatedAt, AvailableAt: m.AvailableAt}
			v.Queue, v.Instance = pubsub.SplitInstanceQueue(m.Queue)
			setPayload(&v, m.Payload)
			out = append(out, v)
		}
	}
	more := len(out) > offset+limit
	out = out[min(offset, len(out)):min(offset+limit, len(out))]
	queue, instance := pubsub.SplitInstanceQueue(name)
	resp := map[string]any{"queue": queue, "messages": out, "offset": offset, "more": more}
	if instance != "" {
		resp["instance"] = instance
	}
	writeJSON(w, http.StatusOK, resp)
}

// offsetParam reads ?offset, how many pending messages a page skips: 0 to
// 10000 (pages read from the head of the queue).
func offsetParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("offset")
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 10000 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("offset=%q: want an integer from 0 to 10000", s))
		return 0, false
	}
	return n, true
}
