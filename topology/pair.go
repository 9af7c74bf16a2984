package topology

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// CheckPair checks that the two services' configurations work together,
// which neither can tell alone: for every queue, the producer (in one
// service) and the consumer (in the other)
//
//   - are on one messaging backend: their BackendURL values name the same
//     server, database or name and namespace (PostgreSQL schema, NATS
//     prefix), whatever the credentials and tuning parameters. The seed's
//     defaults fail this (each service its own database): set
//     messaging_url or QUANTUM_FLOW_MESSAGING_URL alike for both;
//   - agree on its delivery mode;
//
// and the two agree on instance_ttl and broadcast_retention (zero is the
// default): the producing service's router dead-letters what waits for
// the consuming service's instances by its own values, while the CLI and
// a returning instance go by theirs.
//
// Pass the effective configuration of each service (from Load, which has
// validated each), in either order. The error is a *ConfigError wrapping
// ErrInvalidConfig with one problem per queue and finding, naming the
// queue and both values (URLs redacted); `quantumflow config check
// --service all` reports it and exits 2.
func CheckPair(a, b ServiceConfig) error {
	if a.Name == CentralCloud && b.Name == Singularity {
		a, b = b, a
	}
	if a.Name != Singularity || b.Name != CentralCloud {
		return &ConfigError{Problems: []string{fmt.Sprintf(
			"services %s and %s: need one %s and one %s configuration", quote(a.Name), quote(b.Name), Singularity, CentralCloud)}}
	}
	ps := &problems{}
	for _, l := range links(a, b) {
		from, to := l.producer.cfg, l.consumer.cfg
		fromURL, toURL := from.BackendURL(), to.BackendURL()
		if same, why := sameBackend(fromURL, toURL); !same {
			ps.add("%s: %s publishes to %s and %s consumes from %s: not one messaging backend (%s)",
				l.queue, from.Name, quote(pubsub.RedactURL(fromURL)), to.Name, quote(pubsub.RedactURL(toURL)), why)
		}
	}
	for _, m := range deliveryMismatches(a, b) {
		ps.add("%s", m)
	}
	for _, w := range []struct {
		key          string
		a, b, orElse time.Duration
	}{
		{SettingInstanceTTL, a.InstanceTTL, b.InstanceTTL, DefaultInstanceTTL},
		{SettingBroadcastRetention, a.BroadcastRetention, b.BroadcastRetention, DefaultBroadcastRetention},
	} {
		if da, db := cmp.Or(w.a, w.orElse), cmp.Or(w.b, w.orElse); da != db {
			ps.add("%s: %s.%s=%s and %s.%s=%s differ: the producing service's router dead-letters by its own value; set them alike",
				w.key, a.Name, w.key, formatDuration(da), b.Name, w.key, formatDuration(db))
		}
	}
	if len(ps.list) > 0 {
		return &ConfigError{Problems: ps.list}
	}
	return nil
}

// pairEntry is one side of a queue between the two services.
type pairEntry struct {
	cfg                *ServiceConfig
	service, side, key string
	delivery           Delivery
}

func (e pairEntry) path() string { return e.service + "." + e.side + "s." + e.key }

// link is a queue with its producer and its consumer.
type link struct {
	queue              string
	producer, consumer pairEntry
}

// links returns the queues one of a and b produces and the other
// consumes, in the order of QueueNames.
func links(a, b ServiceConfig) []link {
	var out []link
	for _, q := range QueueNames() {
		for _, pair := range [][2]*ServiceConfig{{&a, &b}, {&b, &a}} {
			from, to := pair[0], pair[1]
			p, okP := from.Producer(q)
			c, okC := to.Consumer(q)
			if okP && okC {
				out = append(out, link{q,
					pairEntry{from, from.Name, SideProducer, p.Key, p.Delivery},
					pairEntry{to, to.Name, SideConsumer, c.Key, c.Delivery}})
			}
		}
	}
	return out
}

// deliveryMismatch is a queue whose producer and consumer disagree on its
// delivery mode.
type deliveryMismatch struct {
	queue              string
	producer, consumer pairEntry
	// notes say where each side's value came from, when known.
	producerNote, consumerNote string
}

func (m deliveryMismatch) String() string {
	note := func(s string) string {
		if s == "" {
			return ""
		}
		return " (" + s + ")"
	}
	return fmt.Sprintf("%s: %s.delivery=%s%s and %s.delivery=%s%s differ: the producer and the consumer of a queue must agree on its delivery",
		m.queue, m.producer.path(), quote(string(m.producer.delivery)), note(m.producerNote),
		m.consumer.path(), quote(string(m.consumer.delivery)), note(m.consumerNote))
}

func deliveryMismatches(a, b ServiceConfig) []deliveryMismatch {
	var out []deliveryMismatch
	for _, l := range links(a, b) {
		if l.producer.delivery != l.consumer.delivery {
			out = append(out, deliveryMismatch{queue: l.queue, producer: l.producer, consumer: l.consumer})
		}
	}
	return out
}

// sameBackend reports whether two backend URLs reach the same queues, and
// if not, why in a few words. Credentials are not compared (two users of
// one database share its queues), nor are tuning parameters (batch,
// lease, sslmode, ...); scheme aliases, host case and default ports are
// normalised. A server reached through different host names is beyond
// it: give both services the same URL.
func sameBackend(a, b string) (bool, string) {
	ka, sharedA := backendKey(a)
	kb, sharedB := backendKey(b)
	if !sharedA || !sharedB {
		return false, "mem:// without a NAME is private to each backend that opens it; use mem://NAME"
	}
	if ka != kb {
		return false, "set messaging_url or " + EnvMessagingURL + " alike for both services"
	}
	return true, ""
}

// backendKey reduces a backend URL to what decides where its queues are.
// shared is false for a URL whose storage no other backend can share.
func backendKey(raw string) (key string, shared bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return raw, true
	}
	q, _ := url.ParseQuery(u.RawQuery)
	scheme, host, namespace := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), ""
	var defaultPort string
	switch scheme {
	case "postgres", "postgresql":
		// The schema parameter and its default are backends/postgres's.
		scheme, defaultPort, namespace = "postgres", "5432", "schema="+cmp.Or(q.Get("schema"), "public")
	case "nats", "tls":
		// The prefix parameter and its default are backends/nats's.
		scheme, defaultPort, namespace = "nats", "4222", "prefix="+cmp.Or(q.Get("prefix"), "QF")
	case "mem":
		if u.Host == "" {
			return "", false
		}
		host = u.Host // a name, not a host: its case counts
	}
	if p := u.Port(); p != "" && p != defaultPort {
		host = net.JoinHostPort(host, p)
	}
	return scheme + "://" + host + strings.TrimSuffix(u.Path, "/") + "?" + namespace, true
}
