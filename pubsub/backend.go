package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// OpenOptions are the options every opener receives.
type OpenOptions struct {
	// Logger is never nil (a discarding logger when the caller gave none).
	Logger *slog.Logger
	// Namespace, when not empty, keeps everything the backend stores apart
	// from what it stores without one (its own PostgreSQL schema, NATS
	// stream prefix, mem storage): letters, digits and '_', 1-32. A driver
	// with a namespace implements NamespaceDropper.
	Namespace string
}

// NamespaceDropper is implemented by a driver opened with a namespace: it
// removes everything stored in the namespace.
type NamespaceDropper interface {
	// DropNamespace removes everything the driver stored in its
	// namespace: queues, messages, dead letters and registry records.
	// Backend.DropNamespace calls it once publishing and receiving have
	// stopped, and only on a backend opened with a namespace.
	DropNamespace(ctx context.Context) error
}

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// Opener opens a driver for a parsed URL. It must reject query parameters
// it does not know with an error wrapping ErrInvalidURL, and must not put
// the URL's password in any error.
type Opener func(ctx context.Context, u *url.URL, opts OpenOptions) (Driver, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a backend available to Open under a URL scheme. Backend
// packages call it from init. Registering a scheme twice panics, as
// database/sql does, because it is a programming error.
func Register(scheme string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("pubsub: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Option configures Open.
type Option func(*openConfig)

type openConfig struct {
	logger    *slog.Logger
	required  Capabilities
	namespace string
}

// WithLogger sets the logger the backend logs through. Nil discards.
func WithLogger(l *slog.Logger) Option { return func(c *openConfig) { c.logger = l } }

// WithNamespace opens the backend in a namespace of its own, apart from
// the queues, dead letters and instances stored without one (the demo
// runs in one, so that it never touches an application's queues).
// DropNamespace removes it.
func WithNamespace(ns string) Option { return func(c *openConfig) { c.namespace = ns } }

// Require makes Open fail with ErrUnsupported unless the backend has every
// capability in cs. The URL parameter require=name,... does the same.
func Require(cs ...Capability) Option {
	return func(c *openConfig) { c.required |= NewCapabilities(cs...) }
}

// Backend is an open messaging backend: Watermill publisher and subscriber
// plus the Admin operations. It is safe for concurrent use.
type Backend struct {
	Admin
	engine    *engine
	scheme    string
	namespace string
	redacted  string
	closeOnce sync.Once
	closeErr  error
}

// Open opens the backend registered for rawURL's scheme.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Backend, error) {
	cfg := openConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.namespace != "" && !namespaceRE.MatchString(cfg.namespace) {
		return nil, fmt.Errorf("%w: namespace %q: use 1-32 letters, digits or '_'", ErrInvalidArgument, cfg.namespace)
	}
	redacted := RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		// The parser's message can repeat any part of the URL, password
		// included: say only that it is not a URL.
		return nil, fmt.Errorf("%w %s: does not parse as scheme://[user[:password]@]host[:port][/path][?query]", ErrInvalidURL, redacted)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w %s: no scheme (known: %s)", ErrUnknownScheme, redacted, strings.Join(Schemes(), ", "))
	}
	if err := checkQuery(u.RawQuery); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidURL, redacted, err)
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q in %q (known: %s)", ErrUnknownScheme, u.Scheme, redacted, strings.Join(Schemes(), ", "))
	}
	q := u.Query()
	if req, ok := q["require"]; ok {
		caps, err := ParseCapabilities(strings.Join(req, ","))
		if err != nil {
			return nil, fmt.Errorf("%w %q: parameter require: %v", ErrInvalidURL, redacted, err)
		}
		cfg.required |= caps
		q.Del("require")
		u.RawQuery = q.Encode()
	}
	d, err := open(ctx, u, OpenOptions{Logger: cfg.logger, Namespace: cfg.namespace})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redacted, err)
	}
	if missing := d.Capabilities().Missing(cfg.required); missing != 0 {
		_ = d.Close()
		return nil, fmt.Errorf("open %s: %w: %s (it has: %s)", redacted, ErrUnsupported, missing, d.Capabilities())
	}
	if _, ok := d.(NamespaceDropper); cfg.namespace != "" && !ok {
		_ = d.Close()
		return nil, fmt.Errorf("open %s: %w: namespaces", redacted, ErrUnsupported)
	}
	e := newEngine(d, cfg.logger)
	return &Backend{Admin: engineAdmin{e}, engine: e, scheme: u.Scheme, namespace: cfg.namespace, redacted: redacted}, nil
}

// checkQuery refuses a query whose pairs Go's url.Query would drop
// silently (a ';' in a pair, bad escapes), naming the parameter and never
// its value.
func checkQuery(raw string) error {
	if _, err := url.ParseQuery(raw); err == nil {
		return nil
	}
	for _, pair := range strings.Split(raw, "&") {
		key, value, _ := strings.Cut(pair, "=")
		_, kerr := url.QueryUnescape(key)
		_, verr := url.QueryUnescape(value)
		if strings.Contains(pair, ";") || kerr != nil || verr != nil {
			if kerr != nil || strings.Contains(key, ";") {
				return errors.New("a query parameter name is malformed (';' or a bad %-escape)")
			}
			return fmt.Errorf("query parameter %q: its value has a ';' or a bad %%-escape", key)
		}
	}
	return errors.New("the query is malformed")
}

// Publisher returns the backend's Watermill publisher. Publish takes its
// context from the first message (msg.SetContext): a context already done
// stores nothing and returns its error.
func (b *Backend) Publisher() message.Publisher {
	return enginePublisher{b.engine}
}

// Subscriber returns the backend's Watermill subscriber. Subscriptions to
// one queue compete: each message goes to one of them.
func (b *Backend) Subscriber() message.Subscriber {
	return engineSubscriber{b.engine}
}

// Capabilities returns what the backend can do.
func (b *Backend) Capabilities() Capabilities {
	return b.engine.d.Capabilities()
}

// MaxPayload returns the largest payload, in bytes, the backend stores
// (see PayloadLimiter); 0 means it has no limit of its own.
func (b *Backend) MaxPayload() int { return b.engine.maxPayload() }

// Scheme returns the URL scheme the backend was opened with.
func (b *Backend) Scheme() string { return b.scheme }

// String returns the backend's URL with any password redacted.
func (b *Backend) String() string { return b.redacted }

// Driver returns the underlying driver, for backend-specific extensions
// (such as transactional publish) reached by type assertion.
func (b *Backend) Driver() Driver { return b.engine.d }

// DropNamespace removes everything the backend stored in the namespace it
// was opened with (WithNamespace), then closes it.
func (b *Backend) DropNamespace(ctx context.Context) error {
	nd, ok := b.engine.d.(NamespaceDropper)
	if !ok || b.namespace == "" {
		return fmt.Errorf("drop namespace: %w: the backend was opened without one", ErrInvalidArgument)
	}
	b.engine.closePublisher()
	b.engine.closeSubscriber()
	if err := nd.DropNamespace(ctx); err != nil {
		return b.engine.wrap("drop namespace", "", err)
	}
	return b.Close()
}

// Close closes the backend. It is idempotent: later calls return the
// first call's result.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.engine.close() })
	return b.closeErr
}

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)

// ValidateQueueName returns an error wrapping ErrInvalidQueueName unless
// name is 1–200 letters, digits, '_', '.' or '-' other than "." and ".."
// (path segments, which URLs such as the HTTP API's /api/queues/{queue}
// resolve away), or such a name, '@' and an instance id (an instance's
// queue, see InstanceQueue). Backends map queue names onto table values,
// stream names and subjects, so every backend accepts the same set.
func ValidateQueueName(name string) error {
	queue, instance := SplitInstanceQueue(name)
	if !queueNameRE.MatchString(queue) || queue == "." || queue == ".." ||
		instance != "" && ValidateInstanceID(instance) != nil ||
		instance == "" && strings.Contains(name, InstanceSeparator) {
		return fmt.Errorf("%w %q: use 1-200 letters, digits, '_', '.' or '-', not . or .. alone (and for an instance's queue '@' and 1-64 of those)", ErrInvalidQueueName, name)
	}
	return nil
}
