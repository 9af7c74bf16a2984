package nats

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Defaults of the URL parameters.
const (
	DefaultPrefix         = "QF"
	DefaultReplicas       = 1
	DefaultAckWait        = 30 * time.Second
	DefaultDedupWindow    = 2 * time.Minute
	DefaultPublishTimeout = 30 * time.Second
	// DefaultPrefetch caps the pull-ahead, which is itself about what the
	// subscriptions took in the last 50ms: a cap much below what a fast
	// queue takes in that time leaves its subscriptions waiting on each
	// pull's round trip, worse on a busy machine (4 workers took 0.7 of
	// raw nats.go's rate with 128, about 0.83 with 1024 and 0.89 with
	// 2048). A higher cap costs more on a give-back (the last
	// subscription ending, an admin read in the same process, workers that
	// slowed down): every message given back costs a state write, and
	// another write and a purge when it is handled (4 workers restarting
	// on a 10k backlog: about 67k msg/s with 128, 60k with 1024, 47k with
	// 2048).
	DefaultPrefetch = 1024
	// DefaultMaxAckPending is unlimited: messages waiting for a delayed
	// retry count as ack-pending in JetStream, so any cap would stop the
	// queue's delivery once that many messages wait for their retry.
	DefaultMaxAckPending = -1
)

// config is what the URL says.
type config struct {
	servers        []string // nats:// or tls:// URLs, userinfo included
	name           string
	creds          string
	nkeySeed       string
	tlsCA          string
	tlsCert        string
	tlsKey         string
	prefix         string
	replicas       int
	storage        jetstream.StorageType
	ackWait        time.Duration
	maxAckPending  int
	maxMsgs        int64
	maxBytes       int64
	maxAge         time.Duration
	dedupWindow    time.Duration
	publishTimeout time.Duration
	prefetch       int
}

// params lists every query parameter the URL may carry, for the error
// that names an unknown one.
var params = []string{
	"ack_wait", "creds", "dedup_window", "max_ack_pending", "max_age", "max_bytes", "max_msgs",
	"name", "nkey", "prefetch", "prefix", "publish_timeout", "replicas", "servers", "storage",
	"tls_ca", "tls_cert", "tls_key",
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// parseURL reads u into a config. Errors wrap pubsub.ErrInvalidURL and
// never repeat the URL (the caller adds its redacted form).
func parseURL(u *url.URL) (config, error) {
	c := config{
		name:           "quantumflow",
		prefix:         DefaultPrefix,
		replicas:       DefaultReplicas,
		storage:        jetstream.FileStorage,
		ackWait:        DefaultAckWait,
		maxAckPending:  DefaultMaxAckPending,
		maxMsgs:        -1,
		maxBytes:       -1,
		dedupWindow:    DefaultDedupWindow,
		publishTimeout: DefaultPublishTimeout,
		prefetch:       DefaultPrefetch,
	}
	bad := func(param, format string, args ...any) error {
		return fmt.Errorf("%w: parameter %s: %s", pubsub.ErrInvalidURL, param, fmt.Sprintf(format, args...))
	}
	if u.Host == "" {
		return c, fmt.Errorf("%w: no host (want %s://host:4222)", pubsub.ErrInvalidURL, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return c, fmt.Errorf("%w: a NATS URL has no path", pubsub.ErrInvalidURL)
	}
	first := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}
	c.servers = []string{first.String()}

	q := u.Query()
	for k, vs := range q {
		if !slices.Contains(params, k) {
			return c, fmt.Errorf("%w: unknown parameter %q (known: %s)", pubsub.ErrInvalidURL, k, strings.Join(params, ", "))
		}
		if len(vs) != 1 {
			return c, bad(k, "given %d times", len(vs))
		}
	}
	var err error
	str := func(k string, dst *string) {
		if q.Has(k) {
			*dst = q.Get(k)
		}
	}
	str("name", &c.name)
	str("creds", &c.creds)
	str("nkey", &c.nkeySeed)
	str("tls_ca", &c.tlsCA)
	str("tls_cert", &c.tlsCert)
	str("tls_key", &c.tlsKey)
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return c, bad("tls_cert", "tls_cert and tls_key go together")
	}
	if q.Has("servers") {
		for s := range strings.SplitSeq(q.Get("servers"), ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			su, perr := url.Parse(s)
			if perr != nil || su.Host == "" || (su.Scheme != "nats" && su.Scheme != "tls") {
				return c, bad("servers", "want a comma-separated list of nats://host:port or tls://host:port")
			}
			c.servers = append(c.servers, s)
		}
	}
	if q.Has("prefix") {
		c.prefix = q.Get("prefix")
		if !prefixRE.MatchString(c.prefix) {
			return c, bad("prefix", "%q: use 1-32 letters, digits, '_' or '-'", c.prefix)
		}
	}
	if q.Has("replicas") {
		if c.replicas, err = strconv.Atoi(q.Get("replicas")); err != nil || c.replicas < 1 || c.replicas > 5 {
			return c, bad("replicas", "%q: want 1 to 5", q.Get("replicas"))
		}
	}
	if q.Has("storage") {
		switch q.Get("storage") {
		case "file":
			c.storage = jetstream.FileStorage
		case "memory":
			c.storage = jetstream.MemoryStorage
		default:
			return c, bad("storage", "%q: want file or memory", q.Get("storage"))
		}
	}
	dur := func(k string, dst *time.Duration, min time.Duration) error {
		if !q.Has(k) {
			return nil
		}
		d, err := time.ParseDuration(q.Get(k))
		if err != nil || d < min {
			return bad(k, "%q: want a duration of at least %s, such as 30s", q.Get(k), min)
		}
		*dst = d
		return nil
	}
	for _, p := range []struct {
		k   string
		dst *time.Duration
		min time.Duration
	}{
		{"ack_wait", &c.ackWait, time.Second},
		{"dedup_window", &c.dedupWindow, 100 * time.Millisecond},
		{"publish_timeout", &c.publishTimeout, 100 * time.Millisecond},
		{"max_age", &c.maxAge, 0},
	} {
		if err := dur(p.k, p.dst, p.min); err != nil {
			return c, err
		}
	}
	i64 := func(k string, dst *int64) error {
		if !q.Has(k) {
			return nil
		}
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		if err != nil || (n < 1 && n != -1) {
			return bad(k, "%q: want a positive integer, or -1 for no limit", q.Get(k))
		}
		*dst = n
		return nil
	}
	if err := i64("max_msgs", &c.maxMsgs); err != nil {
		return c, err
	}
	if err := i64("max_bytes", &c.maxBytes); err != nil {
		return c, err
	}
	if q.Has("max_ack_pending") {
		n, err := strconv.Atoi(q.Get("max_ack_pending"))
		if err != nil || (n < 1 && n != -1) {
			return c, bad("max_ack_pending", "%q: want a positive integer, or -1 for no limit", q.Get("max_ack_pending"))
		}
		c.maxAckPending = n
	}
	if q.Has("prefetch") {
		if c.prefetch, err = strconv.Atoi(q.Get("prefetch")); err != nil || c.prefetch < 1 || c.prefetch > 10000 {
			return c, bad("prefetch", "%q: want 1 to 10000", q.Get("prefetch"))
		}
	}
	return c, nil
}
