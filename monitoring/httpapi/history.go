package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// DefaultHistoryInterval is how often the handler samples the queues for
// its charts; HistoryWindow is how far back they go.
const (
	DefaultHistoryInterval = 10 * time.Second
	HistoryWindow          = time.Hour
)

// HistoryPoint is one sample of a queue (or of every queue, summed).
type HistoryPoint struct {
	At          time.Time `json:"at"`
	Pending     int64     `json:"pending"`
	InFlight    int64     `json:"in_flight"`
	Scheduled   int64     `json:"scheduled"`
	DeadLetters int64     `json:"dead_letters"`
	// InPerSecond is the messages published per second since the
	// previous point, OutPerSecond those acked (delivered, on a backend
	// that counts deliveries rather than acks): absent on the first point
	// and where the backend keeps no such counter (PostgreSQL).
	InPerSecond  *float64 `json:"in_per_second,omitempty"`
	OutPerSecond *float64 `json:"out_per_second,omitempty"`
}

// History is the answer of GET /api/history: the samples of the last
// HistoryWindow, oldest first.
type History struct {
	// Queue is the queue sampled; empty for the sum of every queue.
	Queue           string         `json:"queue,omitempty"`
	IntervalSeconds float64        `json:"interval_seconds"`
	WindowSeconds   float64        `json:"window_seconds"`
	Points          []HistoryPoint `json:"points"`
}

// rawPoint is a sample as kept: the counters themselves, rates are
// computed when asked.
type rawPoint struct {
	at                             time.Time
	pending, inFlight, sched, dead int64
	in, out                        int64
	hasIn, hasOut                  bool
}

// history keeps the samples of the last HistoryWindow of each queue
// (and of all, under ""), in memory: a ring per queue, as long as the
// window holds samples.
type history struct {
	size   int
	mu     sync.Mutex
	series map[string][]rawPoint
}

func newHistory(interval time.Duration) *history {
	return &history{size: int(HistoryWindow/interval) + 1, series: map[string][]rawPoint{}}
}

// add appends p to queue's series, dropping what the window no longer
// holds.
func (h *history) add(queue string, p rawPoint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := append(h.series[queue], p)
	if len(s) > h.size {
		s = append(s[:0:0], s[len(s)-h.size:]...)
	}
	h.series[queue] = s
}

// prune forgets the queues with no sample in the window.
func (h *history) prune(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for q, s := range h.series {
		if now.Sub(s[len(s)-1].at) > HistoryWindow {
			delete(h.series, q)
		}
	}
}

// points returns queue's samples with their rates; false when the queue
// has none.
func (h *history) points(queue string) ([]HistoryPoint, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.series[queue]
	if !ok {
		return nil, false
	}
	out := make([]HistoryPoint, len(s))
	for i, p := range s {
		out[i] = HistoryPoint{At: p.at, Pending: p.pending, InFlight: p.inFlight, Scheduled: p.sched, DeadLetters: p.dead}
		if i == 0 {
			continue
		}
		prev := s[i-1]
		dt := p.at.Sub(prev.at).Seconds()
		out[i].InPerSecond = rate(prev.in, p.in, prev.hasIn && p.hasIn, dt)
		out[i].OutPerSecond = rate(prev.out, p.out, prev.hasOut && p.hasOut, dt)
	}
	return out, true
}

// rate is the per-second growth of a counter; nil when either sample
// lacks it or it went down (the backend restarted and counts afresh).
func rate(from, to int64, ok bool, dt float64) *float64 {
	if !ok || to < from || dt <= 0 {
		return nil
	}
	r := round2(float64(to-from) / dt)
	return &r
}

// pointOf turns a queue's view into a sample.
func pointOf(at time.Time, v QueueView) rawPoint {
	p := rawPoint{at: at, pending: v.Pending, inFlight: v.InFlight, sched: v.Scheduled, dead: v.DeadLetters}
	p.in, p.hasIn = v.Counters["published"]
	p.out, p.hasOut = v.Counters["acked"]
	if !p.hasOut {
		p.out, p.hasOut = v.Counters["delivered"]
	}
	return p
}

// sampleHistory samples every queue now and then every interval until
// ctx ends. A failed sample (backend down) leaves a gap.
func (a *api) sampleHistory(ctx context.Context) {
	t := time.NewTicker(a.opts.HistoryInterval)
	defer t.Stop()
	for {
		a.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *api) sampleOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	defer cancel()
	ov, err := a.overview(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("history sample failed", "error", err)
		}
		return
	}
	now := time.Now().UTC()
	total := rawPoint{at: now, hasIn: len(ov.Queues) > 0, hasOut: len(ov.Queues) > 0}
	for _, v := range ov.Queues {
		p := pointOf(now, v)
		a.history.add(v.Name, p)
		total.pending += p.pending
		total.inFlight += p.inFlight
		total.sched += p.sched
		total.dead += p.dead
		total.in += p.in
		total.out += p.out
		total.hasIn = total.hasIn && p.hasIn
		total.hasOut = total.hasOut && p.hasOut
	}
	a.history.add("", total)
	a.history.prune(now)
}

// getHistory answers GET /api/history[?queue=Q].
func (a *api) getHistory(w http.ResponseWriter, r *http.Request) {
	queue := r.URL.Query().Get("queue")
	if queue != "" {
		if err := pubsub.ValidateQueueName(queue); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	points, ok := a.history.points(queue)
	if !ok && queue == "" {
		points = []HistoryPoint{} // no sample taken yet
	} else if !ok {
		writeError(w, http.StatusNotFound, "no samples of queue "+queue+" in the last hour (is it a queue of GET /api/queues?)")
		return
	}
	writeJSON(w, http.StatusOK, History{Queue: queue, IntervalSeconds: a.opts.HistoryInterval.Seconds(),
		WindowSeconds: HistoryWindow.Seconds(), Points: points})
}
