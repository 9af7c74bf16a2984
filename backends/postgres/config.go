package postgres

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// config is the backend's configuration from its URL's query parameters.
type config struct {
	// schema holds the tables. Defaults to "public".
	schema string
	// listen uses LISTEN/NOTIFY for wake-ups. Defaults to true; false
	// (poll only) for PgBouncer in transaction mode.
	listen bool
	// pollInterval is how often an idle consumer looks for messages.
	// Defaults to 1s with listen, 100ms without.
	pollInterval time.Duration
	// lease is how long a claimed message stays with its consumer before
	// another one may take it, extended while the backend holds it.
	// Defaults to 30s.
	lease time.Duration
	// batch is the most messages one claim takes. Defaults to 1000: a
	// claim's statements and round trip cost about as much as a few
	// hundred of its rows, and claims grow to this size only while the
	// subscriptions empty them within 50ms (four subscriptions consumed
	// 0.6-0.7 of the raw claim-100 loop's rate with 100, 0.8-0.95 with
	// 1000; bench/ and BenchmarkConsume).
	batch int
	// publishBatch is the most messages one publish transaction carries
	// when concurrent publishes are coalesced. Defaults to 1000.
	publishBatch int
	// notifyDebounce is the shortest time between two notifications of a
	// queue from one backend. Defaults to 2ms.
	notifyDebounce time.Duration
	// ackDelay is how long acks and nacks may wait to be written together.
	// Defaults to 5ms.
	ackDelay time.Duration
	// syncAcks makes claims, acks, nacks and dead-letter moves wait for
	// their commit to reach disk. Defaults to true: see the package doc's
	// Durability.
	syncAcks bool
	// maxConns caps the connection pool unless pool_max_conns is given.
	maxConns int32
	// maxPayload is the largest payload a message may have, in bytes.
	// Defaults to pubsub.DefaultMaxPayload (1 MiB, NATS's default too);
	// at most maxPayloadLimit.
	maxPayload int
	// vacuumThreshold is how many dead tuples in the messages table make
	// a consuming backend vacuum it (vacuum.go). Defaults to 50000; 0
	// leaves vacuuming to autovacuum.
	vacuumThreshold int
}

// maxPayloadLimit caps max_payload: a publish transaction carries up to
// publish_batch messages, and each is held in memory by the publisher,
// the dispatcher and the server's statement at once.
const maxPayloadLimit = 64 << 20

// URL parameters the backend reads itself.
const (
	paramSchema         = "schema"
	paramListen         = "listen"
	paramPollInterval   = "poll_interval"
	paramLease          = "lease"
	paramBatch          = "batch"
	paramPublishBatch   = "publish_batch"
	paramNotifyDebounce = "notify_debounce"
	paramAckDelay       = "ack_delay"
	paramSyncAcks       = "sync_acks"
	paramMaxPayload     = "max_payload"
	paramVacuum         = "vacuum_threshold"
)

var ownParams = []string{paramSchema, paramListen, paramPollInterval, paramLease, paramBatch,
	paramPublishBatch, paramNotifyDebounce, paramAckDelay, paramSyncAcks, paramMaxPayload, paramVacuum}

// pgxParams are the connection parameters pgx (libpq's names) and pgxpool
// understand, plus a few common server settings. Anything else in a URL is
// a mistake: pgx would send it to the server as a setting, and the error
// would come late and obscure.
var pgxParams = []string{
	"host", "port", "database", "dbname", "user", "password", "passfile", "connect_timeout",
	"sslmode", "sslkey", "sslcert", "sslcertmode", "sslrootcert", "sslnegotiation", "sslpassword", "sslsni",
	"krbspn", "krbsrvname", "target_session_attrs", "service", "servicefile",
	"min_protocol_version", "max_protocol_version", "channel_binding", "require_auth",
	"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
	"pool_max_conns", "pool_min_conns", "pool_min_idle_conns", "pool_max_conn_lifetime",
	"pool_max_conn_idle_time", "pool_health_check_period", "pool_max_conn_lifetime_jitter", "pool_ping_timeout",
	"application_name", "search_path", "timezone", "TimeZone", "options", "statement_timeout",
	"lock_timeout", "idle_in_transaction_session_timeout",
}

var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,49}$`)

// parseConfig takes the backend's own parameters out of u's query and
// checks that the rest are pgx's. It returns the config and u without the
// backend's parameters, ready for pgx.
func parseConfig(u *url.URL) (config, *url.URL, error) {
	cfg := config{
		schema:          "public",
		listen:          true,
		lease:           30 * time.Second,
		batch:           1000,
		publishBatch:    1000,
		notifyDebounce:  2 * time.Millisecond,
		ackDelay:        5 * time.Millisecond,
		maxConns:        20,
		syncAcks:        true,
		maxPayload:      pubsub.DefaultMaxPayload,
		vacuumThreshold: 50000,
	}
	q := u.Query()
	bad := func(name, value, want string) error {
		return fmt.Errorf("%w: parameter %s=%q: %s", pubsub.ErrInvalidURL, name, value, want)
	}
	duration := func(name string, min time.Duration, dst *time.Duration) error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < min {
			return bad(name, v, fmt.Sprintf("want a duration of at least %s, such as 500ms", min))
		}
		*dst = d
		return nil
	}
	integer := func(name string, min, max int, dst *int) error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			return bad(name, v, fmt.Sprintf("want an integer from %d to %d", min, max))
		}
		*dst = n
		return nil
	}
	if v, ok := q[paramSchema]; ok {
		if len(v) != 1 || !schemaRE.MatchString(v[0]) {
			return cfg, nil, bad(paramSchema, strings.Join(v, ","), "want 1-50 letters, digits or '_', not starting with a digit")
		}
		cfg.schema = v[0]
	}
	if v := q.Get(paramListen); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, nil, bad(paramListen, v, "want true or false")
		}
		cfg.listen = b
	}
	if v := q.Get(paramSyncAcks); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, nil, bad(paramSyncAcks, v, "want true or false")
		}
		cfg.syncAcks = b
	}
	cfg.pollInterval = time.Second
	if !cfg.listen {
		cfg.pollInterval = 100 * time.Millisecond
	}
	for _, err := range []error{
		duration(paramPollInterval, time.Millisecond, &cfg.pollInterval),
		duration(paramLease, 100*time.Millisecond, &cfg.lease),
		duration(paramNotifyDebounce, 0, &cfg.notifyDebounce),
		duration(paramAckDelay, 0, &cfg.ackDelay),
		integer(paramBatch, 1, 10000, &cfg.batch),
		integer(paramPublishBatch, 1, 100000, &cfg.publishBatch),
		integer(paramMaxPayload, 1, maxPayloadLimit, &cfg.maxPayload),
		integer(paramVacuum, 0, math.MaxInt32, &cfg.vacuumThreshold),
	} {
		if err != nil {
			return cfg, nil, err
		}
	}
	for _, p := range ownParams {
		q.Del(p)
	}
	for name := range q {
		if !slices.Contains(pgxParams, name) {
			return cfg, nil, fmt.Errorf("%w: unknown parameter %q (QuantumFlow's: %s; and PostgreSQL connection parameters such as sslmode)",
				pubsub.ErrInvalidURL, name, strings.Join(ownParams, ", "))
		}
	}
	out := *u
	out.RawQuery = q.Encode()
	return cfg, &out, nil
}
