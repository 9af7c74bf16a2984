package topology

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file's shape. Scalars are kept as nodes so that a bad value is
// reported with its key, its text and its line, in our words rather than
// a Go type error. fileShape below lists the same keys for the walk that
// finds unknown keys and wrong shapes before anything is decoded.
type fileYAML struct {
	Profile      yaml.Node    `yaml:"profile"`
	Singularity  *serviceYAML `yaml:"singularity"`
	CentralCloud *serviceYAML `yaml:"centralcloud"`
}

type serviceYAML struct {
	DatabaseURL        yaml.Node                `yaml:"database_url"`
	MessagingURL       yaml.Node                `yaml:"messaging_url"`
	InstanceID         yaml.Node                `yaml:"instance_id"`
	InstanceTTL        yaml.Node                `yaml:"instance_ttl"`
	BroadcastRetention yaml.Node                `yaml:"broadcast_retention"`
	Producers          map[string]*producerYAML `yaml:"producers"`
	Consumers          map[string]*consumerYAML `yaml:"consumers"`
}

type entryYAML struct {
	QueueName    yaml.Node `yaml:"queue_name"`
	Workers      yaml.Node `yaml:"workers"`
	MaxRetries   yaml.Node `yaml:"max_retries"`
	RetryDelayMS yaml.Node `yaml:"retry_delay_ms"`
	Priority     yaml.Node `yaml:"priority"`
	Delivery     yaml.Node `yaml:"delivery"`
	DedupWindow  yaml.Node `yaml:"dedup_window"`
}

type producerYAML struct {
	entryYAML  `yaml:",inline"`
	MessageTTL yaml.Node `yaml:"message_ttl"`
}

type consumerYAML struct {
	entryYAML `yaml:",inline"`
	// Handler names the handler, unless HandlerMethod is given: then it is
	// the seed's Elixir module of the handler, which a Go service has no
	// use for, and is read and set aside.
	Handler       yaml.Node `yaml:"handler"`
	HandlerMethod yaml.Node `yaml:"handler_method"`
}

// shape is what one place of the file may hold: a mapping with the keys
// listed (with the shape under each key that is not a single value), or
// with entries keyed by any name, each of the shape entries.
type shape struct {
	what    string
	keys    []string
	sub     map[string]*shape
	entries *shape
}

var (
	producerShape = &shape{what: "a producer entry",
		keys: []string{"queue_name", "workers", "max_retries", "retry_delay_ms", "priority", "delivery", "message_ttl", "dedup_window"}}
	consumerShape = &shape{what: "a consumer entry",
		keys: []string{"queue_name", "workers", "handler", "handler_method", "max_retries", "retry_delay_ms", "priority", "delivery", "dedup_window"}}
	serviceShape = &shape{what: "a service section",
		keys: []string{"database_url", "messaging_url", "instance_id", "instance_ttl", "broadcast_retention", "producers", "consumers"},
		sub: map[string]*shape{
			"producers": {what: "the producer entries", entries: producerShape},
			"consumers": {what: "the consumer entries", entries: consumerShape},
		}}
	fileShape = &shape{what: "the top level",
		keys: []string{"profile", Singularity, CentralCloud},
		sub:  map[string]*shape{Singularity: serviceShape, CentralCloud: serviceShape}}
)

// yamlLineRE reads the line out of yaml's syntax errors, which are text
// only (the decoder's type errors are avoided by walking the document
// first, see checkShape).
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// fileConfig is a parsed configuration file.
type fileConfig struct {
	path string
	doc  yaml.Node // the raw document, to find keys' paths and lines
	data fileYAML
}

// readFile reads and decodes a configuration file. Problems it returns
// (unreadable file, bad YAML, unknown keys, wrong shapes) stop the load.
func readFile(path string) (*fileConfig, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("config file: %v", err)}, err
	}
	f := &fileConfig{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	err = dec.Decode(&f.doc)
	if errors.Is(err, io.EOF) {
		return f, nil, nil // an empty file sets nothing
	}
	if err != nil {
		return nil, []string{f.syntaxError(err)}, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, []string{fmt.Sprintf("%s: more than one YAML document", path)}, nil
	}
	ps := &problems{}
	if len(f.doc.Content) > 0 {
		f.checkShape(f.doc.Content[0], fileShape, nil, ps)
	}
	if len(ps.list) > 0 {
		return nil, ps.list, nil
	}
	// The walk has refused anything the decoder could not take.
	if err := f.doc.Decode(&f.data); err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", path, err)}, nil
	}
	return f, nil, nil
}

func (f *fileConfig) syntaxError(err error) string {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf("%s:%s: %s", f.path, m[1], m[2])
	}
	return fmt.Sprintf("%s: %s", f.path, strings.TrimPrefix(err.Error(), "yaml: "))
}

// checkShape walks the node at path against what may be there: unknown
// keys, and a single value, list or mapping where another is expected,
// are problems naming the key path and line. Single values are checked
// where they are read (scalar). A key with no value is absent.
func (f *fileConfig) checkShape(n *yaml.Node, sh *shape, path []string, ps *problems) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		want := sh.what
		if len(sh.keys) > 0 {
			want += " (" + strings.Join(sh.keys, ", ") + ")"
		}
		got := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
		if got == "" {
			got = quote(n.Value)
		}
		where := ""
		if len(path) > 0 {
			where = " " + strings.Join(path, ".") + ":"
		}
		ps.add("%s:%d:%s expected %s, got %s", f.path, n.Line, where, want, got)
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := append(slices.Clone(path), k.Value)
		if first, dup := seen[k.Value]; dup {
			ps.add("%s:%d: %s: duplicate key (first at line %d)", f.path, k.Line, strings.Join(p, "."), first)
			continue
		}
		seen[k.Value] = k.Line
		switch {
		case k.ShortTag() == "!!merge":
			// "<<: *anchor" brings the anchor's keys here: check them here.
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					f.checkShape(m, sh, path, ps)
				}
			} else {
				f.checkShape(v, sh, path, ps)
			}
		case sh.entries != nil:
			f.checkShape(v, sh.entries, p, ps)
		case !slices.Contains(sh.keys, k.Value):
			ps.add("%s:%d: %s: unknown key in %s (known: %s)", f.path, k.Line, strings.Join(p, "."), sh.what, strings.Join(sh.keys, ", "))
		case sh.sub[k.Value] != nil:
			f.checkShape(v, sh.sub[k.Value], p, ps)
		}
	}
}

// scalar returns a value node's text; ok is false when the key is absent.
// A key present with no value, or with a list or mapping, is a problem.
func (f *fileConfig) scalar(n *yaml.Node, key string, ps *problems) (string, bool) {
	if n.Kind == 0 {
		return "", false
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case n.Kind != yaml.ScalarNode:
		ps.add("%s:%d: %s: expected a single value, got a %s", f.path, n.Line, key, kindName(n.Kind))
		return "", false
	case n.ShortTag() == "!!null":
		ps.add("%s:%d: %s: no value", f.path, n.Line, key)
		return "", false
	}
	return n.Value, true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "node"
}

// profile returns the file's profile, if it sets a valid one.
func (f *fileConfig) profile(ps *problems) (string, bool) {
	v, ok := f.scalar(&f.data.Profile, "profile", ps)
	if !ok {
		return "", false
	}
	if msg := checkProfile(v); msg != "" {
		ps.add("%s:%d: profile=%q: %s", f.path, f.data.Profile.Line, v, msg)
		return "", false
	}
	return v, true
}

// apply overrides cfg with the file's section for cfg's service, field by
// field: what the file leaves out keeps its value.
func (f *fileConfig) apply(cfg *ServiceConfig, ps *problems) {
	sec := f.section(cfg.Name)
	if sec == nil {
		return
	}
	if v, ok := f.scalar(&sec.DatabaseURL, cfg.Name+".database_url", ps); ok &&
		checkURL(fmt.Sprintf("%s:%d: %s.database_url", f.path, sec.DatabaseURL.Line, cfg.Name), v, ps) {
		cfg.DatabaseURL = v
	}
	if v, ok := f.scalar(&sec.MessagingURL, cfg.Name+".messaging_url", ps); ok &&
		checkURL(fmt.Sprintf("%s:%d: %s.messaging_url", f.path, sec.MessagingURL.Line, cfg.Name), v, ps) {
		cfg.MessagingURL = v
	}
	if v, ok := f.scalar(&sec.InstanceID, cfg.Name+".instance_id", ps); ok {
		if msg := checkInstanceID(v); msg != "" {
			ps.add("%s:%d: %s.instance_id=%s: %s", f.path, sec.InstanceID.Line, cfg.Name, quote(v), msg)
		} else {
			cfg.InstanceID = v
		}
	}
	for _, w := range []struct {
		key   string
		node  *yaml.Node
		limit time.Duration
		field *time.Duration
	}{
		{SettingInstanceTTL, &sec.InstanceTTL, InstanceTTLLimit, &cfg.InstanceTTL},
		{SettingBroadcastRetention, &sec.BroadcastRetention, BroadcastRetentionLimit, &cfg.BroadcastRetention},
	} {
		name := cfg.Name + "." + w.key
		if v, ok := f.scalar(w.node, name, ps); ok {
			if d, msg := parseWait(v, w.limit); msg != "" {
				ps.add("%s:%d: %s=%s: %s", f.path, w.node.Line, name, quote(v), msg)
			} else {
				*w.field = d
			}
		}
	}
	for _, key := range f.keysInFileOrder(slices.Collect(maps.Keys(sec.Producers)), cfg.Name, "producers") {
		var e *entryYAML
		p := sec.Producers[key]
		if p != nil {
			e = &p.entryYAML
		}
		f.applyEntry(cfg, SideProducer, key, e, nil, ps)
		if p != nil {
			f.applyMessageTTL(cfg, key, p, ps)
		}
	}
	for _, key := range f.keysInFileOrder(slices.Collect(maps.Keys(sec.Consumers)), cfg.Name, "consumers") {
		c := sec.Consumers[key]
		var e *entryYAML
		if c != nil {
			e = &c.entryYAML
		}
		f.applyEntry(cfg, SideConsumer, key, e, c, ps)
	}
}

// section returns the file's section of a service, nil when it has none.
func (f *fileConfig) section(service string) *serviceYAML {
	if service == CentralCloud {
		return f.data.CentralCloud
	}
	return f.data.Singularity
}

func (f *fileConfig) applyEntry(cfg *ServiceConfig, side, key string, y *entryYAML, c *consumerYAML, ps *problems) {
	name := cfg.Name + "." + side + "s." + key
	ref, ok := cfg.entry(side, key)
	if !ok {
		line := keyNodeLine(&f.doc, cfg.Name, side+"s", key)
		ps.add("%s:%d: %s: unknown %s of %s (known: %s)", f.path, line, name, side, cfg.Name, strings.Join(cfg.entryKeys(side), ", "))
		return
	}
	if y == nil {
		return
	}
	if v, ok := f.scalar(&y.QueueName, name+".queue_name", ps); ok {
		if msg := checkQueue(cfg.Name, side, v); msg != "" {
			ps.add("%s:%d: %s.queue_name=%s: %s", f.path, y.QueueName.Line, name, quote(v), msg)
		} else {
			*ref.queue = v
		}
	}
	if v, ok := f.scalar(&y.Workers, name+".workers", ps); ok {
		if n, msg := parseInt(v, 1, MaxWorkers); msg != "" {
			ps.add("%s:%d: %s.workers=%s: %s", f.path, y.Workers.Line, name, quote(v), msg)
		} else {
			*ref.workers = n
		}
	}
	if v, ok := f.scalar(&y.MaxRetries, name+".max_retries", ps); ok {
		if n, msg := parseInt(v, 0, MaxRetriesLimit); msg != "" {
			ps.add("%s:%d: %s.max_retries=%s: %s", f.path, y.MaxRetries.Line, name, quote(v), msg)
		} else {
			*ref.maxRetries = n
		}
	}
	if v, ok := f.scalar(&y.RetryDelayMS, name+".retry_delay_ms", ps); ok {
		if d, msg := parseMillis(v); msg != "" {
			ps.add("%s:%d: %s.retry_delay_ms=%s: %s", f.path, y.RetryDelayMS.Line, name, quote(v), msg)
		} else {
			*ref.retryDelay = d
		}
	}
	if v, ok := f.scalar(&y.DedupWindow, name+".dedup_window", ps); ok {
		if d, msg := parseDedupWindow(v); msg != "" {
			ps.add("%s:%d: %s.dedup_window=%s: %s", f.path, y.DedupWindow.Line, name, quote(v), msg)
		} else {
			*ref.dedupWindow = d
		}
	}
	if v, ok := f.scalar(&y.Priority, name+".priority", ps); ok {
		if msg := checkPriority(v); msg != "" {
			ps.add("%s:%d: %s.priority=%s: %s", f.path, y.Priority.Line, name, quote(v), msg)
		} else {
			*ref.priority = Priority(v)
		}
	}
	if v, ok := f.scalar(&y.Delivery, name+".delivery", ps); ok {
		if msg := checkDelivery(v); msg != "" {
			ps.add("%s:%d: %s.delivery=%s: %s", f.path, y.Delivery.Line, name, quote(v), msg)
		} else {
			*ref.delivery = Delivery(v)
		}
	}
	if c == nil {
		return
	}
	// The seed names a handler by module (handler) and function
	// (handler_method); a Go service registers functions by name, so
	// handler_method is the name when given, and handler otherwise.
	handler, hkey := &c.Handler, "handler"
	if c.HandlerMethod.Kind != 0 {
		_, _ = f.scalar(&c.Handler, name+".handler", ps) // the module: only its shape is checked
		handler, hkey = &c.HandlerMethod, "handler_method"
	}
	if v, ok := f.scalar(handler, name+"."+hkey, ps); ok {
		if v == "" {
			ps.add("%s:%d: %s.%s=\"\": must not be empty", f.path, handler.Line, name, hkey)
		} else {
			*ref.handler = v
		}
	}
}

// checkDeliveries checks that cfg and other, the two services as a file
// holding both their sections configures them, agree on the delivery of
// each queue (as CheckPair does), saying where each side's value came from.
func (f *fileConfig) checkDeliveries(cfg, other ServiceConfig, ps *problems) {
	source := func(e pairEntry) string {
		if line := keyNodeLine(&f.doc, e.service, e.side+"s", e.key, "delivery"); line > 0 {
			return fmt.Sprintf("%s:%d", f.path, line)
		}
		return "seed default"
	}
	for _, m := range deliveryMismatches(cfg, other) {
		m.producerNote, m.consumerNote = source(m.producer), source(m.consumer)
		ps.add("%s", m)
	}
}

// keyNodeLine returns the line of the key at path, or 0.
func keyNodeLine(doc *yaml.Node, path ...string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return line
}

// keysInFileOrder returns a section's entry keys in the order the file
// has them, so problems are reported top to bottom.
func (f *fileConfig) keysInFileOrder(keys []string, path ...string) []string {
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(
			cmp.Compare(keyNodeLine(&f.doc, append(slices.Clone(path), a)...), keyNodeLine(&f.doc, append(slices.Clone(path), b)...)),
			cmp.Compare(a, b))
	})
	return keys
}

// applyMessageTTL sets a producer entry's message_ttl.
func (f *fileConfig) applyMessageTTL(cfg *ServiceConfig, key string, y *producerYAML, ps *problems) {
	name := cfg.Name + ".producers." + key + ".message_ttl"
	v, ok := f.scalar(&y.MessageTTL, name, ps)
	if !ok {
		return
	}
	d, msg := parseMessageTTL(v)
	if msg != "" {
		ps.add("%s:%d: %s=%s: %s", f.path, y.MessageTTL.Line, name, quote(v), msg)
		return
	}
	for i := range cfg.Producers {
		if cfg.Producers[i].Key == key {
			cfg.Producers[i].MessageTTL = d
		}
	}
}

// parseMessageTTL parses a message_ttl: "0" or a duration from
// MinMessageTTL to MessageTTLLimit.
func parseMessageTTL(s string) (time.Duration, string) {
	if strings.TrimSpace(s) == "0" {
		return 0, ""
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, "not a duration (a number with a unit: 30s, 10m, 24h; 0 for none)"
	}
	return d, checkMessageTTL(d)
}

// checkMessageTTL says how d is outside the message_ttl range, or "".
func checkMessageTTL(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d < 0:
		return "must not be negative"
	case d < MinMessageTTL:
		return "must be 0 (none) or at least " + formatDuration(MinMessageTTL)
	case d > MessageTTLLimit:
		return "must be at most " + formatDuration(MessageTTLLimit)
	}
	return ""
}
