package topology

import (
	"errors"
	"fmt"
	"math"
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
// --profile, --workers QUEUE=N, --max-retries, --retry-delay).
type Overrides struct {
	// DatabaseURL replaces database_url; "" = not set.
	DatabaseURL string
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
			fmt.Sprintf("service %q: unknown service (known: %s)", opts.Service, strings.Join(Services(), ", ")),
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
			ps.add("%s=%q: %s", EnvProfile, v, msg)
		} else {
			level, profile = levelEnv, v
		}
	}
	if v := opts.Overrides.Profile; v != "" {
		if msg := checkProfile(v); msg != "" {
			ps.add("--profile=%q: %s", v, msg)
		} else {
			level, profile = levelFlags, v
		}
	}

	if level == levelFile {
		applyProfile(&cfg, profile)
	}
	if file != nil {
		file.apply(&cfg, ps)
		// The other service's section is checked too: one file serves both.
		for _, other := range Services() {
			if other != cfg.Name {
				o, _ := Default(other)
				file.apply(&o, ps)
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
	if v, ok := env(EnvDatabaseURL); ok {
		if msg := checkURL(v); msg != "" {
			ps.add("%s=%q: %s", EnvDatabaseURL, pubsub.RedactURL(v), msg)
		} else {
			cfg.DatabaseURL = v
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
		n, msg := parseInt(v, 1)
		if msg != "" {
			ps.add("%s=%q: %s", w.name, v, msg)
			continue
		}
		if e, ok := cfg.entry(w.side, w.key); ok {
			*e.workers = n
		}
	}
	if v, ok := env(EnvMaxRetries); ok {
		if n, msg := parseInt(v, 0); msg != "" {
			ps.add("%s=%q: %s", EnvMaxRetries, v, msg)
		} else {
			for _, e := range cfg.entries() {
				*e.maxRetries = n
			}
		}
	}
	if v, ok := env(EnvRetryDelayMS); ok {
		if d, msg := parseMillis(v); msg != "" {
			ps.add("%s=%q: %s", EnvRetryDelayMS, v, msg)
		} else {
			for _, e := range cfg.entries() {
				*e.retryDelay = d
			}
		}
	}
}

func applyOverrides(cfg *ServiceConfig, o Overrides, ps *problems) {
	if o.DatabaseURL != "" {
		if msg := checkURL(o.DatabaseURL); msg != "" {
			ps.add("--url=%q: %s", pubsub.RedactURL(o.DatabaseURL), msg)
		} else {
			cfg.DatabaseURL = o.DatabaseURL
		}
	}
	queues := make([]string, 0, len(o.Workers))
	for q := range o.Workers {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	for _, q := range queues {
		n := o.Workers[q]
		flag := fmt.Sprintf("--workers=%q", fmt.Sprintf("%s=%d", q, n))
		var found bool
		for _, e := range cfg.entries() {
			if *e.queue == q {
				found = true
				if n < 1 {
					ps.add("%s: must be at least 1", flag)
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
		if *o.MaxRetries < 0 {
			ps.add("--max-retries=%d: must not be negative", *o.MaxRetries)
		} else {
			for _, e := range cfg.entries() {
				*e.maxRetries = *o.MaxRetries
			}
		}
	}
	if o.RetryDelay != nil {
		if *o.RetryDelay < 0 {
			ps.add("--retry-delay=%s: must not be negative", *o.RetryDelay)
		} else {
			for _, e := range cfg.entries() {
				*e.retryDelay = *o.RetryDelay
			}
		}
	}
}

// Validate checks a configuration however it was built: a known service,
// a usable database URL, known and distinct queue names, positive workers,
// non-negative retries and delays, known priorities, consumers with a
// handler name. Load calls it; so may code that builds a ServiceConfig by
// hand.
func (s ServiceConfig) Validate() error {
	ps := &problems{}
	known := slices.Contains(Services(), s.Name)
	if !known {
		ps.add("name=%q: unknown service (known: %s)", s.Name, strings.Join(Services(), ", "))
	}
	if msg := checkURL(s.DatabaseURL); msg != "" {
		ps.add("%s.database_url=%q: %s", s.Name, pubsub.RedactURL(s.DatabaseURL), msg)
	}
	seen := map[string]string{}
	for _, e := range s.entries() {
		name := s.Name + "." + e.path()
		if msg := checkQueue(s.Name, e.side, *e.queue); msg != "" {
			ps.add("%s.queue_name=%q: %s", name, *e.queue, msg)
		} else if prev, dup := seen[*e.queue]; dup {
			ps.add("%s.queue_name and %s.queue_name are both %q: duplicate queue", prev, name, *e.queue)
		} else {
			seen[*e.queue] = name
		}
		if *e.workers < 1 {
			ps.add("%s.workers=%d: must be at least 1", name, *e.workers)
		}
		if *e.maxRetries < 0 {
			ps.add("%s.max_retries=%d: must not be negative", name, *e.maxRetries)
		}
		if *e.retryDelay < 0 {
			ps.add("%s.retry_delay_ms=%d: must not be negative", name, e.retryDelay.Milliseconds())
		}
		if msg := checkPriority(string(*e.priority)); msg != "" {
			ps.add("%s.priority=%q: %s", name, *e.priority, msg)
		}
		if e.handler != nil && *e.handler == "" {
			ps.add("%s.handler=\"\": must not be empty", name)
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
		ps.add("%s.consumers.%s (queue %s): handler %q is not registered (%s)", cfg.Name, c.Key, c.Queue, c.Handler, have)
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

// checkURL returns what is wrong with a database URL, or "". The message
// never includes the URL, which the caller prints redacted.
func checkURL(raw string) string {
	if raw == "" {
		return "must not be empty"
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, password included: say no more.
		return "not a valid URL"
	}
	if u.Scheme == "" {
		return fmt.Sprintf("no scheme (known: %s)", strings.Join(allowedSchemes, ", "))
	}
	if !slices.Contains(allowedSchemes, u.Scheme) {
		return fmt.Sprintf("unknown scheme %q (known: %s)", u.Scheme, strings.Join(allowedSchemes, ", "))
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

// parseInt parses a decimal integer of at least min.
func parseInt(s string, min int) (int, string) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, "out of range"
		}
		return 0, "not an integer"
	}
	if n < min {
		if min == 0 {
			return 0, "must not be negative"
		}
		return 0, fmt.Sprintf("must be at least %d", min)
	}
	return n, ""
}

// parseMillis parses a non-negative number of milliseconds.
func parseMillis(s string) (time.Duration, string) {
	n, msg := parseInt(s, 0)
	if msg != "" {
		return 0, msg
	}
	if int64(n) > math.MaxInt64/int64(time.Millisecond) {
		return 0, "out of range"
	}
	return time.Duration(n) * time.Millisecond, ""
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
	handler    *string // nil for a producer
}

func (e entryRef) path() string { return e.side + "s." + e.key }

// entries returns references to every entry, producers first.
func (s *ServiceConfig) entries() []entryRef {
	out := make([]entryRef, 0, len(s.Producers)+len(s.Consumers))
	for i := range s.Producers {
		p := &s.Producers[i]
		out = append(out, entryRef{SideProducer, p.Key, &p.Queue, &p.Workers, &p.MaxRetries, &p.RetryDelay, &p.Priority, nil})
	}
	for i := range s.Consumers {
		c := &s.Consumers[i]
		out = append(out, entryRef{SideConsumer, c.Key, &c.Queue, &c.Workers, &c.MaxRetries, &c.RetryDelay, &c.Priority, &c.Handler})
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
