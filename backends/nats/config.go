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
	// DefaultPrefetch caps one receive (pubsub.Tuning.MaxBatch): the
	// engine doubles its batches up to it while the subscriptions empty
	// them fast. A cap much below what a fast queue takes in one round
	// trip leaves its subscriptions waiting on each receive, worse on a
	// busy machine (with the fetcher before the engine, 4 workers took 0.7
	// of raw nats.go's rate with 128, about 0.83 with 1024 and 0.89 with
	// 2048). A higher cap costs more on a give-back (the last subscription
	// ending, an admin read in the same process, workers that slowed
	// down): JetStream redelivers what was given back before anything
	// else, and fetches redeliveries several times slower than new
	// messages.
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
	memConsumers   bool // consumer_storage=memory, see consumerConfig
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
	"ack_wait", "consumer_storage", "creds", "dedup_window", "max_ack_pending", "max_age", "max_bytes", "max_msgs",
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
			return c, badParam(k, "given %d times", len(vs))
		}
	}
	p := paramReader{q: q}
	p.str("name", &c.name)
	p.str("creds", &c.creds)
	p.str("nkey", &c.nkeySeed)
	p.str("tls_ca", &c.tlsCA)
	p.str("tls_cert", &c.tlsCert)
	p.str("tls_key", &c.tlsKey)
	if (c.tlsCert == "") != (c.tlsKey == "") {
		p.fail(badParam("tls_cert", "tls_cert and tls_key go together"))
	}
	p.servers(&c.servers)
	p.str("prefix", &c.prefix)
	if !prefixRE.MatchString(c.prefix) {
		p.fail(badParam("prefix", "%q: use 1-32 letters, digits, '_' or '-'", c.prefix))
	}
	p.intIn("replicas", &c.replicas, 1, 5)
	p.storage(&c.storage)
	p.consumerStorage(&c.memConsumers)
	p.duration("ack_wait", &c.ackWait, time.Second)
	p.duration("dedup_window", &c.dedupWindow, 100*time.Millisecond)
	p.duration("publish_timeout", &c.publishTimeout, 100*time.Millisecond)
	p.duration("max_age", &c.maxAge, 0)
	p.limit("max_msgs", &c.maxMsgs)
	p.limit("max_bytes", &c.maxBytes)
	maxAckPending := int64(c.maxAckPending)
	p.limit("max_ack_pending", &maxAckPending)
	c.maxAckPending = int(maxAckPending)
	p.intIn("prefetch", &c.prefetch, 1, 10000)
	return c, p.err
}

func badParam(param, format string, args ...any) error {
	return fmt.Errorf("%w: parameter %s: %s", pubsub.ErrInvalidURL, param, fmt.Sprintf(format, args...))
}

// paramReader reads query parameters into a config, keeping the first
// error.
type paramReader struct {
	q   url.Values
	err error
}

func (p *paramReader) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// value returns the parameter's value, and false when it is absent or an
// earlier parameter failed.
func (p *paramReader) value(k string) (string, bool) {
	if p.err != nil || !p.q.Has(k) {
		return "", false
	}
	return p.q.Get(k), true
}

func (p *paramReader) str(k string, dst *string) {
	if v, ok := p.value(k); ok {
		*dst = v
	}
}

func (p *paramReader) servers(dst *[]string) {
	v, ok := p.value("servers")
	if !ok {
		return
	}
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		su, err := url.Parse(s)
		if err != nil || su.Host == "" || (su.Scheme != "nats" && su.Scheme != "tls") {
			p.fail(badParam("servers", "want a comma-separated list of nats://host:port or tls://host:port"))
			return
		}
		*dst = append(*dst, s)
	}
}

func (p *paramReader) storage(dst *jetstream.StorageType) {
	switch v, ok := p.value("storage"); {
	case !ok:
	case v == "file":
		*dst = jetstream.FileStorage
	case v == "memory":
		*dst = jetstream.MemoryStorage
	default:
		p.fail(badParam("storage", "%q: want file or memory", v))
	}
}

func (p *paramReader) consumerStorage(memory *bool) {
	switch v, ok := p.value("consumer_storage"); {
	case !ok, v == "file":
	case v == "memory":
		*memory = true
	default:
		p.fail(badParam("consumer_storage", "%q: want file or memory", v))
	}
}

func (p *paramReader) intIn(k string, dst *int, lo, hi int) {
	v, ok := p.value(k)
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(badParam(k, "%q: want %d to %d", v, lo, hi))
		return
	}
	*dst = n
}

func (p *paramReader) duration(k string, dst *time.Duration, least time.Duration) {
	v, ok := p.value(k)
	if !ok {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		p.fail(badParam(k, "%q: want a duration of at least %s, such as 30s", v, least))
		return
	}
	*dst = d
}

// limit reads a positive integer, or -1 for no limit.
func (p *paramReader) limit(k string, dst *int64) {
	v, ok := p.value(k)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || (n < 1 && n != -1) {
		p.fail(badParam(k, "%q: want a positive integer, or -1 for no limit", v))
		return
	}
	*dst = n
}
