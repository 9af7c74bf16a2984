package mem

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Scheme is the URL scheme of this backend.
const Scheme = "mem"

func init() { pubsub.Register(Scheme, open) }

// capabilities is what every mem backend can do.
var capabilities = pubsub.NewCapabilities(
	pubsub.CapDelayedRedelivery,
	pubsub.CapPriorityOrder,
	pubsub.CapDeadLetters,
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)

// Process-wide named storages, shared by every backend opened with the
// same name and discarded when the last of them closes.
var (
	storesMu sync.Mutex
	stores   = map[string]*store{}
)

// acquire returns the storage called name, creating it if needed, with one
// more reference. An empty name is a fresh private storage.
func acquire(name string) *store {
	if name == "" {
		s := newStore(name)
		s.refs = 1
		return s
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	s := stores[name]
	if s == nil {
		s = newStore(name)
		stores[name] = s
	}
	s.refs++
	return s
}

// release drops one reference to s and discards it after the last.
func release(s *store) {
	storesMu.Lock()
	s.refs--
	last := s.refs == 0
	if last && s.name != "" {
		delete(stores, s.name)
	}
	storesMu.Unlock()
	if last {
		s.shutdown()
	}
}

// open is the pubsub.Opener for mem:// URLs.
func open(_ context.Context, u *url.URL, opts pubsub.OpenOptions) (pubsub.Driver, error) {
	if u.Opaque != "" {
		return nil, fmt.Errorf("%w: write mem://NAME, not mem:%s", pubsub.ErrInvalidURL, u.Opaque)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: the mem backend takes no user or password", pubsub.ErrInvalidURL)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: the mem backend takes no path (got %q): write mem://NAME", pubsub.ErrInvalidURL, u.Path)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: the mem backend takes no fragment", pubsub.ErrInvalidURL)
	}
	if u.RawQuery != "" {
		keys := make([]string, 0)
		for k := range u.Query() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%w: unknown query parameter(s) %s: the mem backend takes none", pubsub.ErrInvalidURL, strings.Join(keys, ", "))
	}
	name := u.Host
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: storage name %q: use letters, digits, '_', '.' or '-'", pubsub.ErrInvalidURL, name)
	}
	if opts.Namespace != "" && name != "" {
		// '/' cannot be in a name: no storage opened without a namespace
		// can be this one.
		name = opts.Namespace + "/" + name
	}
	st := acquire(name)
	d := &driver{st: st, logger: opts.Logger}
	d.logger.Debug("mem backend opened", slog.String("storage", name))
	return d, nil
}

// driver is one open mem backend on a (possibly shared) storage.
type driver struct {
	st     *store
	logger *slog.Logger
	closed atomic.Bool
}

var (
	_ pubsub.Driver         = (*driver)(nil)
	_ pubsub.PayloadLimiter = (*driver)(nil)
)

// Capabilities returns what every mem backend can do.
func (d *driver) Capabilities() pubsub.Capabilities { return capabilities }

// DropNamespace empties the storage: queues, dead letters, instances.
// Backends that share it see it empty from then on.
func (d *driver) DropNamespace(context.Context) error {
	d.st.queues.Range(func(k, q any) bool {
		q.(*queue).stop()
		d.st.queues.Delete(k)
		return true
	})
	d.st.dlMu.Lock()
	clear(d.st.dead)
	clear(d.st.deadCount)
	d.st.dlMu.Unlock()
	d.st.reg.mu.Lock()
	clear(d.st.reg.instances)
	clear(d.st.reg.latest)
	d.st.reg.mu.Unlock()
	return nil
}

// Close drops this backend's reference to the storage. The engine calls it
// after every subscription ended and what they held went back.
func (d *driver) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	release(d.st)
	d.logger.Debug("mem backend closed", slog.String("storage", d.st.name))
	return nil
}

// check returns ErrClosed once the backend is closed.
func (d *driver) check() error {
	if d.closed.Load() {
		return fmt.Errorf("mem backend: %w", pubsub.ErrClosed)
	}
	return nil
}
