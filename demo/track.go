package demo

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// tracker follows every message of a demo run by id, from the telemetry
// events of the publishers and the middleware, so that the summary can say
// honestly what happened to each: consumed, dead-lettered, still pending,
// or lost.
type tracker struct {
	mu     sync.Mutex
	queues map[string]*queueTrack
	events map[string]int64 // seed events by name
	// notes are noteworthy events (dead letters) for the progress output,
	// drained by takeNotes.
	notes []string
}

type queueTrack struct {
	published    map[string]struct{}
	consumed     map[string]struct{}
	deadLettered map[string]struct{}
	retried      int64 // retries scheduled (a message may be retried several times)
	failed       int64 // failed attempts
	consumedAll  int64 // consumed events, duplicates (redeliveries) included
}

func newTracker() *tracker {
	t := &tracker{queues: map[string]*queueTrack{}, events: map[string]int64{}}
	for _, q := range topology.QueueNames() {
		t.queue(q)
	}
	return t
}

func (t *tracker) queue(name string) *queueTrack {
	q, ok := t.queues[name]
	if !ok {
		q = &queueTrack{published: map[string]struct{}{}, consumed: map[string]struct{}{}, deadLettered: map[string]struct{}{}}
		t.queues[name] = q
	}
	return q
}

// copyKey names one copy of a message: its id, and on addressed and
// broadcast queues the instance the copy is for.
func copyKey(id, instance string) string {
	if instance == "" {
		return id
	}
	return id + "@" + instance
}

// handle is the telemetry handler; it is quick and does not block.
func (t *tracker) handle(ev telemetry.Event, m telemetry.Measurements, md telemetry.Metadata) {
	queue, _ := md[telemetry.MetaQueue].(string)
	id, _ := md[telemetry.MetaMessageID].(string)
	instance, _ := md[telemetry.MetaInstance].(string)
	id = copyKey(id, instance)
	t.mu.Lock()
	defer t.mu.Unlock()
	name := ev.Name()
	if slices.ContainsFunc(telemetry.SeedEvents(), func(e telemetry.Event) bool { return e.Name() == name }) {
		t.events[name]++
		return
	}
	if queue == "" {
		return
	}
	q := t.queue(queue)
	switch name {
	case telemetry.NameMessagePublished:
		q.published[id] = struct{}{}
	case telemetry.NameMessageConsumed:
		q.consumed[id] = struct{}{}
		q.consumedAll++
	case telemetry.NameMessageDeadLettered:
		q.deadLettered[id] = struct{}{}
		errText, _ := md[telemetry.MetaError].(string)
		t.notes = append(t.notes, fmt.Sprintf("dead letter on %s after %d attempt(s): %s", queue, int(m[telemetry.MeasureAttempt]), errText))
	case telemetry.NameMessageRetried:
		q.retried++
	case telemetry.NameMessageFailed:
		q.failed++
	}
}

// takeNotes returns the notes collected since the last call.
func (t *tracker) takeNotes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.notes
	t.notes = nil
	return n
}

// progress is a snapshot of the totals, for the progress line.
type progress struct {
	published, consumed, retried, deadLettered, open int
}

func (t *tracker) progress() progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	var p progress
	for _, q := range t.queues {
		p.published += len(q.published)
		p.retried += int(q.retried)
		for id := range q.published {
			_, c := q.consumed[id]
			_, d := q.deadLettered[id]
			switch {
			case c:
				p.consumed++
			case d:
				p.deadLettered++
			default:
				p.open++
			}
		}
	}
	return p
}

// settled reports whether every message published so far was consumed or
// dead-lettered. Handlers publish their answers before they return, so
// once everything published is settled nothing more is on its way.
func (t *tracker) settled() bool {
	return t.progress().open == 0
}

// received returns how many distinct copies of queue's messages
// published by this run each instance consumed (copies left by an earlier
// run on the same data directory count as recovered, not here).
func (t *tracker) received(queue string) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	q := t.queue(queue)
	for key := range q.consumed {
		if _, ours := q.published[key]; !ours {
			continue
		}
		if _, inst, ok := strings.Cut(key, "@"); ok {
			out[inst]++
		}
	}
	return out
}

// published returns how many messages of queue were published, copies
// not counted.
func (t *tracker) publishedOnce(queue string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := map[string]struct{}{}
	for key := range t.queue(queue).published {
		id, _, _ := strings.Cut(key, "@")
		ids[id] = struct{}{}
	}
	return len(ids)
}

// eventCounts returns how often each of the seed's 14 events fired.
func (t *tracker) eventCounts() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, 14)
	for _, e := range telemetry.SeedEvents() {
		out[e.Name()] = t.events[e.Name()]
	}
	return out
}

// summarize builds the per-queue summary. pending and dead hold the ids
// the backend lists, by queue, after the routers stopped, and inFlight how
// many it holds as in flight: the backend, not telemetry, says what is
// still there.
func (t *tracker) summarize(pending, dead map[string]map[string]struct{}, inFlight map[string]int) []QueueSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := topology.QueueNames()
	for q := range t.queues {
		if !slices.Contains(names, q) {
			names = append(names, q)
		}
	}
	out := make([]QueueSummary, 0, len(names))
	for _, name := range names {
		q := t.queue(name)
		s := QueueSummary{Queue: name, Published: len(q.published), Retried: int(q.retried)}
		var unlisted []string
		for id := range q.published {
			_, c := q.consumed[id]
			_, d := dead[name][id]
			_, p := pending[name][id]
			switch {
			case c:
				s.Consumed++
			case d:
				s.DeadLettered++
			case p:
				s.Pending++
			default:
				unlisted = append(unlisted, id)
			}
		}
		s.InFlight = min(len(unlisted), inFlight[name])
		s.Lost = len(unlisted) - s.InFlight
		if s.Lost > 0 {
			s.LostIDs = unlisted[:min(len(unlisted), 10)]
		}
		earlier := map[string]struct{}{}
		for _, settled := range []map[string]struct{}{q.consumed, q.deadLettered} {
			for id := range settled {
				if _, ours := q.published[id]; !ours {
					earlier[id] = struct{}{}
				}
			}
		}
		s.Recovered = len(earlier)
		s.Redelivered = int(q.consumedAll) - len(q.consumed)
		out = append(out, s)
	}
	return out
}
