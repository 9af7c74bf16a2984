package topology

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// ErrInvalidConfig is wrapped by every error of Load, Validate and
// ValidateHandlers, so a caller can tell bad configuration (the CLI's exit
// status 2) from a failure at run time.
var ErrInvalidConfig = errors.New("invalid configuration")

// ConfigError lists everything wrong with a service's configuration. Each
// problem names where the bad value came from — a file and line and key, an
// environment variable or a flag — and the value, with any URL password
// redacted.
type ConfigError struct {
	// Service is the service whose configuration was loaded; "" when the
	// service name itself was bad.
	Service string
	// Problems are the individual findings, in the order of precedence
	// levels (file, environment, flags).
	Problems []string

	// cause is an underlying error worth testing for, such as the
	// os.ErrNotExist of a missing file.
	cause error
}

// Error implements error: one line for one problem, else one per line.
func (e *ConfigError) Error() string {
	head := "invalid configuration"
	if e.Service != "" {
		head = "invalid " + e.Service + " configuration"
	}
	if len(e.Problems) == 1 {
		return head + ": " + e.Problems[0]
	}
	return head + ":\n  " + strings.Join(e.Problems, "\n  ")
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true, and exposes the
// underlying error if there is one (errors.Is(err, fs.ErrNotExist) for a
// missing file).
func (e *ConfigError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalidConfig, e.cause}
	}
	return []error{ErrInvalidConfig}
}

// LoadOptions says where a service's configuration comes from. Precedence,
// lowest first: the seed's defaults, the YAML file, the environment, the
// Overrides (flags). A scaling profile applies at the level that sets it
// (see the package documentation).
type LoadOptions struct {
	// Service is the service to load: Singularity or CentralCloud.
	// Required.
	Service string
	// Path is the YAML file to read; "" means none.
	Path string
	// LookupEnv reads an environment variable. Defaults to os.LookupEnv.
	// A variable set to the empty string counts as unset.
	LookupEnv func(string) (string, bool)
	// Overrides are the command-line flags, the highest level.
	Overrides Overrides
}

// Overrides are settings from command-line flags. A zero field is not set.
// Problems with them are reported under the CLI's flag names (--url,
// --database-url, --instance, --instance-ttl, --broadcast-retention,
// --profile, --workers QUEUE=N, --max-retries, --retry-delay).
type Overrides struct {
	// MessagingURL replaces messaging_url, the backend the service's
	// queues are on (the CLI's --url); "" = not set.
	MessagingURL string
	// DatabaseURL replaces database_url (--database-url), which is only
	// the fallback of a messaging_url no level sets; "" = not set. A caller
	// whose flag names the backend to open sets MessagingURL instead.
	DatabaseURL string
	// InstanceID replaces instance_id (the CLI's --instance); "" = not
	// set.
	InstanceID string
	// InstanceTTL replaces instance_ttl (--instance-ttl); nil = not set.
	InstanceTTL *time.Duration
	// BroadcastRetention replaces broadcast_retention
	// (--broadcast-retention); nil = not set.
	BroadcastRetention *time.Duration
	// Profile is a scaling profile (small, medium, large); "" = not set.
	Profile string
	// Workers sets the workers of the service's entry for each queue name.
	Workers map[string]int
	// MaxRetries replaces max_retries of every entry of the service.
	MaxRetries *int
	// RetryDelay replaces retry_delay_ms of every entry of the service.
	RetryDelay *time.Duration
}

// Profile precedence levels.
const (
	levelNone = iota
	levelFile
	levelEnv
	levelFlags
)

// Load returns a service's configuration: the seed's defaults overridden
// by the YAML file, then by the environment, then by opts.Overrides, and
// validated. With nothing set it returns exactly Default(opts.Service).
// Every problem found is reported at once in a *ConfigError wrapping
// ErrInvalidConfig. Handlers are checked separately by ValidateHandlers,
// since only the service knows which it registered.
func Load(opts LoadOptions) (ServiceConfig, error) {
	cfg, ok := Default(opts.Service)
	if !ok {
		return ServiceConfig{}, &ConfigError{Problems: []string{
			fmt.Sprintf("service %s: unknown service (known: %s)", quote(opts.Service), strings.Join(Services(), ", ")),
		}}
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := func(name string) (string, bool) {
		v, ok := lookup(name)
		return v, ok && v != ""
	}
	ps := &problems{}

	var file *fileConfig
	if opts.Path != "" {
		f, fatal, cause := readFile(opts.Path)
		if fatal != nil {
			return ServiceConfig{}, &ConfigError{Service: cfg.Name, Problems: fatal, cause: cause}
		}
		file = f
	}

	// The profile set at the highest level wins, and applies at that level.
	level, profile := levelNone, ""
	if file != nil {
		if p, ok := file.profile(ps); ok {
			level, profile = levelFile, p
		}
	}
	if v, ok := env(EnvProfile); ok {
		if msg := checkProfile(v); msg != "" {
			ps.add("%s=%s: %s", EnvProfile, quote(v), msg)
		} else {
			level, profile = levelEnv, v
		}
	}
	if v := opts.Overrides.Profile; v != "" {
		if msg := checkProfile(v); msg != "" {
			ps.add("--profile=%s: %s", quote(v), msg)
		} else {
			level, profile = levelFlags, v
		}
	}

	if level == levelFile {
		applyProfile(&cfg, profile)
	}
	if file != nil {
		file.apply(&cfg, ps)
		// The other service's section is checked too: one file serves both,
		// and when it holds both sections their deliveries must agree.
		for _, other := range Services() {
			if other != cfg.Name {
				o, _ := Default(other)
				file.apply(&o, ps)
				if file.data.Singularity != nil && file.data.CentralCloud != nil {
					file.checkDeliveries(cfg, o, ps)
				}
			}
		}
	}
	if level == levelEnv {
		applyProfile(&cfg, profile)
	}
	applyEnv(&cfg, env, ps)
	if level == levelFlags {
		applyProfile(&cfg, profile)
	}
	applyOverrides(&cfg, opts.Overrides, ps)

	if len(ps.list) > 0 {
		return ServiceConfig{}, &ConfigError{Service: cfg.Name, Problems: ps.list}
	}
	if err := cfg.Validate(); err != nil {
		return ServiceConfig{}, err
	}
	return cfg, nil
}

func applyEnv(cfg *ServiceConfig, env func(string) (string, bool), ps *problems) {
	if v, ok := env(EnvDatabaseURL); ok && checkURL(EnvDatabaseURL, v, ps) {
		cfg.DatabaseURL = v
	}
	if v, ok := env(EnvMessagingURL); ok && checkURL(EnvMessagingURL, v, ps) {
		cfg.MessagingURL = v
	}
	if v, ok := env(EnvInstanceID); ok {
		if msg := checkInstanceID(v); msg != "" {
			ps.add("%s=%s: %s", EnvInstanceID, quote(v), msg)
		} else {
			cfg.InstanceID = v
		}
	}
	for _, w := range []struct {
		name  string
		limit time.Duration
		field *time.Duration
	}{
		{EnvInstanceTTL, InstanceTTLLimit, &cfg.InstanceTTL},
		{EnvBroadcastRetention, BroadcastRetentionLimit, &cfg.BroadcastRetention},
	} {
		if v, ok := env(w.name); ok {
			if d, msg := parseWait(v, w.limit); msg != "" {
				ps.add("%s=%s: %s", w.name, quote(v), msg)
			} else {
				*w.field = d
			}
		}
	}
	for _, w := range envWorkers {
		if w.service != cfg.Name {
			continue
		}
		v, ok := env(w.name)
		if !ok {
			continue
		}
		n, msg := parseInt(v, 1, MaxWorkers)
		if msg != "" {
			ps.add("%s=%s: %s", w.name, quote(v), msg)
			continue
		}
		if e, ok := cfg.entry(w.side, w.key); ok {
			*e.workers = n
		}
	}
	if v, ok := env(EnvMaxRetries); ok {
		if n, msg := parseInt(v, 0, MaxRetriesLimit); msg != "" {
			ps.add("%s=%s: %s", EnvMaxRetries, quote(v), msg)
		} else {
			for _, e := range cfg.entries() {
				*e.maxRetries = n
			}
		}
	}
	if v, ok := env(EnvRetryDelayMS); ok {
		if d, msg := parseMillis(v); msg != "" {
			ps.add("%s=%s: %s", EnvRetryDelayMS, quote(v), msg)
		} else {
			for _, e := range cfg.entries() {
				*e.retryDelay = d
			}
		}
	}
}

func applyOverrides(cfg *ServiceConfig, o Overrides, ps *problems) {
	if o.DatabaseURL != "" && checkURL("--database-url", o.DatabaseURL, ps) {
		cfg.DatabaseURL = o.DatabaseURL
	}
	if o.MessagingURL != "" && checkURL("--url", o.MessagingURL, ps) {
		cfg.MessagingURL = o.MessagingURL
	}
	if o.InstanceID != "" {
		if msg := checkInstanceID(o.InstanceID); msg != "" {
			ps.add("--instance=%s: %s", quote(o.InstanceID), msg)
		} else {
			cfg.InstanceID = o.InstanceID
		}
	}
	for _, w := range []struct {
		flag  string
		limit time.Duration
		value *time.Duration
		field *time.Duration
	}{
		{"--instance-ttl", InstanceTTLLimit, o.InstanceTTL, &cfg.InstanceTTL},
		{"--broadcast-retention", BroadcastRetentionLimit, o.BroadcastRetention, &cfg.BroadcastRetention},
	} {
		if w.value == nil {
			continue
		}
		if msg := checkWait(*w.value, w.limit); msg != "" {
			ps.add("%s=%s: %s", w.flag, formatDuration(*w.value), msg)
		} else {
			*w.field = *w.value
		}
	}
	queues := make([]string, 0, len(o.Workers))
	for q := range o.Workers {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	for _, q := range queues {
		n := o.Workers[q]
		flag := "--workers=" + quote(fmt.Sprintf("%s=%d", q, n))
		var found bool
		for _, e := range cfg.entries() {
			if *e.queue == q {
				found = true
				if msg := checkRange(n, 1, MaxWorkers); msg != "" {
					ps.add("%s: %s", flag, msg)
				} else {
					*e.workers = n
				}
			}
		}
		if !found {
			ps.add("%s: unknown queue (known: %s)", flag, strings.Join(QueueNames(), ", "))
		}
	}
	if o.MaxRetries != nil {
		if msg := checkRange(*o.MaxRetries, 0, MaxRetriesLimit); msg != "" {
			ps.add("--max-retries=%d: %s", *o.MaxRetries, msg)
		} else {
			for _, e := range cfg.entries() {
				*e.maxRetries = *o.MaxRetries
			}
		}
	}
	if o.RetryDelay != nil {
		switch d := *o.RetryDelay; {
		case d < 0:
			ps.add("--retry-delay=%s: must not be negative", d)
		case d > RetryDelayLimit:
			ps.add("--retry-delay=%s: must be at most %s", d, RetryDelayLimit)
		default:
			for _, e := range cfg.entries() {
				*e.retryDelay = d
			}
		}
	}
}

// Validate checks a configuration however it was built: a known service,
// usable database and messaging URLs, a valid instance id, instance_ttl
// and broadcast_retention within their bounds (zero means the default),
// known and distinct queue names, workers, retries and delays within
// their bounds, known priorities and delivery modes, consumers with a
// handler name. Load calls it; so may code that builds a ServiceConfig by
// hand. It checks one service; CheckPair checks the two together.
func (s ServiceConfig) Validate() error {
	ps := &problems{}
	known := slices.Contains(Services(), s.Name)
	if !known {
		ps.add("name=%s: unknown service (known: %s)", quote(s.Name), strings.Join(Services(), ", "))
	}
	checkURL(s.Name+".database_url", s.DatabaseURL, ps)
	if s.MessagingURL != "" {
		checkURL(s.Name+".messaging_url", s.MessagingURL, ps)
	}
	if msg := checkInstanceID(s.InstanceID); msg != "" {
		ps.add("%s.instance_id=%s: %s", s.Name, quote(s.InstanceID), msg)
	}
	if d := s.InstanceTTL; d != 0 {
		if msg := checkWait(d, InstanceTTLLimit); msg != "" {
			ps.add("%s.instance_ttl=%s: %s", s.Name, formatDuration(d), msg)
		}
	}
	if d := s.BroadcastRetention; d != 0 {
		if msg := checkWait(d, BroadcastRetentionLimit); msg != "" {
			ps.add("%s.broadcast_retention=%s: %s", s.Name, formatDuration(d), msg)
		}
	}
	seen := map[string]string{}
	for _, e := range s.entries() {
		s.checkEntry(e, seen, ps)
	}
	for _, p := range s.Producers {
		if msg := checkMessageTTL(p.MessageTTL); msg != "" {
			ps.add("%s.producers.%s.message_ttl=%s: %s", s.Name, p.Key, p.MessageTTL, msg)
		}
	}
	if len(ps.list) > 0 {
		svc := s.Name
		if !known {
			svc = ""
		}
		return &ConfigError{Service: svc, Problems: ps.list}
	}
	return nil
}

// checkEntry adds the problems of one producer or consumer entry to ps;
// seen maps each queue name met so far to the entry that has it.
func (s ServiceConfig) checkEntry(e entryRef, seen map[string]string, ps *problems) {
	name := s.Name + "." + e.path()
	if msg := checkQueue(s.Name, e.side, *e.queue); msg != "" {
		ps.add("%s.queue_name=%s: %s", name, quote(*e.queue), msg)
	} else if prev, dup := seen[*e.queue]; dup {
		ps.add("%s.queue_name and %s.queue_name are both %s: duplicate queue", prev, name, quote(*e.queue))
	} else {
		seen[*e.queue] = name
	}
	if msg := checkRange(*e.workers, 1, MaxWorkers); msg != "" {
		ps.add("%s.workers=%d: %s", name, *e.workers, msg)
	}
	if msg := checkRange(*e.maxRetries, 0, MaxRetriesLimit); msg != "" {
		ps.add("%s.max_retries=%d: %s", name, *e.maxRetries, msg)
	}
	if d := *e.retryDelay; d < 0 {
		ps.add("%s.retry_delay_ms=%d: must not be negative", name, d.Milliseconds())
	} else if d > RetryDelayLimit {
		ps.add("%s.retry_delay_ms=%d: must be at most %d", name, d.Milliseconds(), RetryDelayLimit.Milliseconds())
	}
	if d := *e.dedupWindow; d != 0 {
		if msg := checkDedupWindow(d); msg != "" {
			ps.add("%s.dedup_window=%s: %s", name, d, msg)
		}
	}
	if msg := checkPriority(string(*e.priority)); msg != "" {
		ps.add("%s.priority=%s: %s", name, quote(string(*e.priority)), msg)
	}
	if msg := checkDelivery(string(*e.delivery)); msg != "" {
		ps.add("%s.delivery=%s: %s", name, quote(string(*e.delivery)), msg)
	}
	if e.handler != nil && *e.handler == "" {
		ps.add("%s.handler=\"\": must not be empty", name)
	}
}

// ValidateHandlers checks that every consumer's handler is among the
// registered handler names, naming each consumer, its queue and its
// handler when not.
func ValidateHandlers(cfg ServiceConfig, registered []string) error {
	ps := &problems{}
	for _, c := range cfg.Consumers {
		if slices.Contains(registered, c.Handler) {
			continue
		}
		have := "none registered"
		if len(registered) > 0 {
			r := slices.Clone(registered)
			sort.Strings(r)
			have = "registered: " + strings.Join(r, ", ")
		}
		ps.add("%s.consumers.%s (queue %s): handler %s is not registered (%s)", cfg.Name, c.Key, c.Queue, quote(c.Handler), have)
	}
	if len(ps.list) > 0 {
		return &ConfigError{Service: cfg.Name, Problems: ps.list}
	}
	return nil
}

// QueueNames returns the six queue names of the topology, in the order of
// the seed's queue table.
func QueueNames() []string {
	return []string{ProposalsQueue, ConsensusQueue, MetricsQueue, PatternsQueue, RollbackQueue, SafetyProfilesQueue}
}

// allowedSchemes are the URL schemes a database_url may have: the
// backends of this project. Checked here rather than against
// pubsub.Schemes so that configuration can be checked by a binary that
// links none of the backends.
var allowedSchemes = []string{"mem", "nats", "postgres", "postgresql", "tls"}

// checkURL checks a database or messaging URL, adding a problem under
// where (a key, variable or flag) when it is unusable. The URL is shown
// with its secrets redacted, and not at all when it does not parse: then
// no one can tell which part is the password.
func checkURL(where, raw string, ps *problems) bool {
	if raw == "" {
		ps.add("%s=\"\": must not be empty", where)
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, password included: say no more.
		ps.add("%s: not a valid URL (not shown, as it may hold a password)", where)
		return false
	}
	if u.Opaque != "" {
		// "postgres:user:pw@host/db": no "//", so the password is not in
		// User and RedactURL cannot find it.
		ps.add("%s: not a valid URL: no \"//\" after the scheme (not shown, as it may hold a password)", where)
		return false
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		// Query() would drop the bad pair, and RedactURL with it, unredacted.
		ps.add("%s: not a valid URL: a query parameter does not parse (a ';' or a bad %%-escape; not shown, as it may hold a password)", where)
		return false
	}
	shown := quote(pubsub.RedactURL(raw))
	if u.Scheme == "" {
		ps.add("%s=%s: no scheme (known: %s)", where, shown, strings.Join(allowedSchemes, ", "))
		return false
	}
	if !slices.Contains(allowedSchemes, u.Scheme) {
		ps.add("%s=%s: unknown scheme %s (known: %s)", where, shown, quote(u.Scheme), strings.Join(allowedSchemes, ", "))
		return false
	}
	return true
}

// checkInstanceID returns what is wrong with an instance id, or "".
func checkInstanceID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if pubsub.ValidateInstanceID(id) != nil {
		return fmt.Sprintf("not a valid instance id (1-64 letters, digits, '_', '.' or '-', and not %q)", pubsub.InstanceAll)
	}
	return ""
}

func checkProfile(p string) string {
	if _, ok := profiles[p]; ok {
		return ""
	}
	return "unknown profile (known: " + strings.Join(ProfileNames(), ", ") + ")"
}

// checkQueue checks the queue of a service's entry on one side: one of
// the six, and one the service is on that side of in the topology (a
// Singularity producer cannot name a queue Singularity consumes).
func checkQueue(service, side, q string) string {
	if !slices.Contains(QueueNames(), q) {
		return "unknown queue (known: " + strings.Join(QueueNames(), ", ") + ")"
	}
	cfg, ok := Default(service)
	if !ok {
		return ""
	}
	var mine []string
	for _, e := range cfg.entries() {
		if e.side == side {
			mine = append(mine, *e.queue)
		}
	}
	if slices.Contains(mine, q) {
		return ""
	}
	verb := map[string]string{SideProducer: "publishes to", SideConsumer: "consumes"}[side]
	return fmt.Sprintf("not a queue %s %s (it %s: %s)", service, verb, verb, strings.Join(mine, ", "))
}

func checkPriority(p string) string {
	switch Priority(p) {
	case PriorityNormal, PriorityHigh:
		return ""
	}
	return fmt.Sprintf("unknown priority (known: %s, %s)", PriorityNormal, PriorityHigh)
}

func checkDelivery(d string) string {
	if slices.Contains(Deliveries(), Delivery(d)) {
		return ""
	}
	known := make([]string, 0, 3)
	for _, m := range Deliveries() {
		known = append(known, string(m))
	}
	return "unknown delivery (known: " + strings.Join(known, ", ") + ")"
}

// parseInt parses a decimal integer from min to max. Text too long for
// any integer is out of bounds like any other, not a different error.
func parseInt(s string, min, max int) (int, string) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if !errors.As(err, &ne) || !errors.Is(ne.Err, strconv.ErrRange) {
			return 0, "not an integer"
		}
		if strings.HasPrefix(s, "-") {
			return 0, checkRange(min-1, min, max)
		}
		return 0, checkRange(max+1, min, max)
	}
	if n < int64(min) {
		return 0, checkRange(min-1, min, max)
	}
	if n > int64(max) {
		return 0, checkRange(max+1, min, max)
	}
	return int(n), ""
}

// checkRange says how n is outside min..max, or "".
func checkRange(n, min, max int) string {
	switch {
	case n < min && min == 0:
		return "must not be negative"
	case n < min:
		return fmt.Sprintf("must be at least %d", min)
	case n > max:
		return fmt.Sprintf("must be at most %d", max)
	}
	return ""
}

// parseMillis parses a number of milliseconds from 0 to RetryDelayLimit.
func parseMillis(s string) (time.Duration, string) {
	n, msg := parseInt(s, 0, int(RetryDelayLimit/time.Millisecond))
	if msg != "" {
		return 0, msg
	}
	return time.Duration(n) * time.Millisecond, ""
}

// parseWait parses instance_ttl or broadcast_retention: a Go duration
// from MinInstanceWait to limit.
func parseWait(s string, limit time.Duration) (time.Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, "not a duration (a number with a unit: 24h, 90m, 30s, 500ms)"
	}
	return d, checkWait(d, limit)
}

// parseDedupWindow parses dedup_window: a Go duration from
// pubsub.MinDedupWindow to DedupWindowLimit.
func parseDedupWindow(s string) (time.Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, "not a duration (a number with a unit: 2m, 30s, 1h)"
	}
	return d, checkDedupWindow(d)
}

// checkDedupWindow says how d is outside pubsub.MinDedupWindow..
// DedupWindowLimit, or "".
func checkDedupWindow(d time.Duration) string {
	switch {
	case d < pubsub.MinDedupWindow:
		return "must be at least " + formatDuration(pubsub.MinDedupWindow)
	case d > DedupWindowLimit:
		return "must be at most " + formatDuration(DedupWindowLimit)
	}
	return ""
}

// checkWait says how d is outside MinInstanceWait..limit, or "".
func checkWait(d, limit time.Duration) string {
	switch {
	case d < 0:
		return "must not be negative"
	case d < MinInstanceWait:
		return "must be at least " + formatDuration(MinInstanceWait)
	case d > limit:
		return "must be at most " + formatDuration(limit)
	}
	return ""
}

// formatDuration writes a duration as a Go duration string without the
// zero minutes and seconds time.Duration.String adds: "24h", "1h30m".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// quote shows a value from the configuration in a problem: quoted, and
// cut short when long, so that a stray megabyte is not printed back.
func quote(v string) string {
	const show = 80
	if len(v) <= show {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(v[:show]), len(v))
}

// problems collects findings.
type problems struct{ list []string }

func (p *problems) add(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

// entryRef points into one producer or consumer of a ServiceConfig, so
// that code setting a field does not care which side it is on.
type entryRef struct {
	side, key  string
	queue      *string
	workers    *int
	maxRetries *int
	retryDelay *time.Duration
	priority   *Priority
	delivery   *Delivery
	handler    *string // nil for a producer
	// dedupWindow is last so that the positional literals above stay
	// readable.
	dedupWindow *time.Duration
}

func (e entryRef) path() string { return e.side + "s." + e.key }

// entries returns references to every entry, producers first.
func (s *ServiceConfig) entries() []entryRef {
	out := make([]entryRef, 0, len(s.Producers)+len(s.Consumers))
	for i := range s.Producers {
		p := &s.Producers[i]
		out = append(out, entryRef{SideProducer, p.Key, &p.Queue, &p.Workers, &p.MaxRetries, &p.RetryDelay, &p.Priority, &p.Delivery, nil, &p.DedupWindow})
	}
	for i := range s.Consumers {
		c := &s.Consumers[i]
		out = append(out, entryRef{SideConsumer, c.Key, &c.Queue, &c.Workers, &c.MaxRetries, &c.RetryDelay, &c.Priority, &c.Delivery, &c.Handler, &c.DedupWindow})
	}
	return out
}

// entry returns the entry of a side with a key.
func (s *ServiceConfig) entry(side, key string) (entryRef, bool) {
	for _, e := range s.entries() {
		if e.side == side && e.key == key {
			return e, true
		}
	}
	return entryRef{}, false
}

// entryKeys returns the keys of one side's entries.
func (s *ServiceConfig) entryKeys(side string) []string {
	var out []string
	for _, e := range s.entries() {
		if e.side == side {
			out = append(out, e.key)
		}
	}
	return out
}
