package telemetry

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
)

// Event names an event: a list of atoms in Erlang's :telemetry, a list of
// strings here, e.g. {"evolution", "QuantumFlow", "proposal_published"}.
// Handlers receive the Bus's own slice: they must not modify it.
type Event []string

// String joins the event's parts with dots: "evolution.QuantumFlow.proposal_published".
func (e Event) String() string { return strings.Join(e, ".") }

// Name returns the event's last part ("proposal_published"), or "" for an
// empty event.
func (e Event) Name() string {
	if len(e) == 0 {
		return ""
	}
	return e[len(e)-1]
}

// HasPrefix reports whether e equals prefix or lies under it. An empty
// prefix matches every event.
func (e Event) HasPrefix(prefix Event) bool {
	if len(prefix) > len(e) {
		return false
	}
	for i, p := range prefix {
		if e[i] != p {
			return false
		}
	}
	return true
}

// Measurements are an event's numbers (duration_ms, count, attempt, ...).
type Measurements map[string]float64

// Metadata is an event's context (queue, service, handler, message_id, error, ...).
type Metadata map[string]any

// HandlerFunc receives events. It runs synchronously in the goroutine that
// executed the event, so it must be quick and must not block; it must not
// modify the event, and may keep the maps only if it copies them.
type HandlerFunc func(event Event, m Measurements, md Metadata)

// ErrDuplicateID is returned by Attach for an id already attached.
var ErrDuplicateID = errors.New("telemetry: handler id already attached")

type attachment struct {
	id     string
	prefix Event
	fn     HandlerFunc
}

// Bus dispatches events to attached handlers. It is safe for concurrent
// use. Executing an event nobody listens to costs one atomic load, so hot
// paths can emit freely; to avoid even building the maps, ask Listening
// first.
type Bus struct {
	mu sync.Mutex // serialises Attach and Detach
	// handlers is replaced, never modified, so Execute reads it without a
	// lock.
	handlers atomic.Pointer[[]attachment]
	logger   atomic.Pointer[slog.Logger]
}

// NewBus returns a Bus with no handlers.
func NewBus() *Bus { return &Bus{} }

// Default is the process-wide Bus behind the package-level functions, and
// the one the router uses unless told otherwise.
var Default = NewBus()

// SetLogger sets where the Bus reports handlers that panicked (and were
// detached). Nil discards.
func (b *Bus) SetLogger(l *slog.Logger) { b.logger.Store(l) }

// Attach calls fn for every event equal to prefix or under it. A trailing
// "*" in prefix is accepted and ignored, so the seed's
// [:evolution, :QuantumFlow, :*] works as written. Attaching an id that is
// already attached is an error wrapping ErrDuplicateID.
func (b *Bus) Attach(id string, prefix Event, fn HandlerFunc) error {
	if fn == nil {
		return fmt.Errorf("telemetry: attach %q: nil handler", id)
	}
	if n := len(prefix); n > 0 && prefix[n-1] == "*" {
		prefix = prefix[:n-1]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var cur []attachment
	if p := b.handlers.Load(); p != nil {
		cur = *p
	}
	for _, a := range cur {
		if a.id == id {
			return fmt.Errorf("%w: %q", ErrDuplicateID, id)
		}
	}
	next := make([]attachment, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, attachment{id: id, prefix: append(Event(nil), prefix...), fn: fn})
	b.handlers.Store(&next)
	return nil
}

// Detach removes the handler attached under id and reports whether there
// was one. Events being executed concurrently may still reach it once.
func (b *Bus) Detach(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.handlers.Load()
	if p == nil {
		return false
	}
	cur := *p
	for i, a := range cur {
		if a.id == id {
			next := make([]attachment, 0, len(cur)-1)
			next = append(next, cur[:i]...)
			next = append(next, cur[i+1:]...)
			b.handlers.Store(&next)
			return true
		}
	}
	return false
}

// Listening reports whether any handler would receive event.
func (b *Bus) Listening(event Event) bool {
	p := b.handlers.Load()
	if p == nil {
		return false
	}
	for _, a := range *p {
		if event.HasPrefix(a.prefix) {
			return true
		}
	}
	return false
}

// ListeningUnder reports whether any handler would receive some event
// equal to prefix or under it: one attached to a prefix of it, or to an
// event under it. Emitters of several events check it once.
func (b *Bus) ListeningUnder(prefix Event) bool {
	p := b.handlers.Load()
	if p == nil {
		return false
	}
	for _, a := range *p {
		if prefix.HasPrefix(a.prefix) || a.prefix.HasPrefix(prefix) {
			return true
		}
	}
	return false
}

// Execute calls every handler attached to event or a prefix of it, in
// attach order, in the calling goroutine. Nil maps are passed as empty
// maps. A handler that panics is detached, as Erlang's :telemetry does, so
// one broken listener cannot take the messaging path down with it.
func (b *Bus) Execute(event Event, m Measurements, md Metadata) {
	p := b.handlers.Load()
	if p == nil || len(*p) == 0 {
		return
	}
	for _, a := range *p {
		if !event.HasPrefix(a.prefix) {
			continue
		}
		if m == nil {
			m = Measurements{}
		}
		if md == nil {
			md = Metadata{}
		}
		b.call(a, event, m, md)
	}
}

func (b *Bus) call(a attachment, event Event, m Measurements, md Metadata) {
	defer func() {
		if r := recover(); r != nil {
			b.Detach(a.id)
			if l := b.logger.Load(); l != nil {
				l.Error("telemetry handler panicked and was detached",
					"handler_id", a.id, "event", event.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}
	}()
	a.fn(event, m, md)
}

// Attach attaches fn to Default; see Bus.Attach.
func Attach(id string, prefix Event, fn HandlerFunc) error { return Default.Attach(id, prefix, fn) }

// Detach detaches id from Default; see Bus.Detach.
func Detach(id string) bool { return Default.Detach(id) }

// Execute executes event on Default; see Bus.Execute.
func Execute(event Event, m Measurements, md Metadata) { Default.Execute(event, m, md) }

// Listening reports whether Default has a handler for event.
func Listening(event Event) bool { return Default.Listening(event) }
