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
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/quantumflow/quantumflow/pubsub"
)

// The file's shape. Scalars are kept as nodes so that a bad value is
// reported with its key, its text and its line, in our words rather than
// a Go type error.
type fileYAML struct {
	Profile      yaml.Node    `yaml:"profile"`
	Singularity  *serviceYAML `yaml:"singularity"`
	CentralCloud *serviceYAML `yaml:"centralcloud"`
}

type serviceYAML struct {
	DatabaseURL yaml.Node                `yaml:"database_url"`
	Producers   map[string]*producerYAML `yaml:"producers"`
	Consumers   map[string]*consumerYAML `yaml:"consumers"`
}

type entryYAML struct {
	QueueName    yaml.Node `yaml:"queue_name"`
	Workers      yaml.Node `yaml:"workers"`
	MaxRetries   yaml.Node `yaml:"max_retries"`
	RetryDelayMS yaml.Node `yaml:"retry_delay_ms"`
	Priority     yaml.Node `yaml:"priority"`
}

type producerYAML struct {
	entryYAML `yaml:",inline"`
}

type consumerYAML struct {
	entryYAML `yaml:",inline"`
	Handler   yaml.Node `yaml:"handler"`
}

// yamlTypes names the file's Go types the way the file's reader knows
// them, with the keys each allows, for rewriting yaml's type errors.
var yamlTypes = map[string]struct{ what, keys string }{
	"topology.fileYAML":                 {"the top level", "profile, singularity, centralcloud"},
	"topology.serviceYAML":              {"a service section", "database_url, producers, consumers"},
	"topology.producerYAML":             {"a producer entry", "queue_name, workers, max_retries, retry_delay_ms, priority"},
	"topology.consumerYAML":             {"a consumer entry", "queue_name, workers, handler, max_retries, retry_delay_ms, priority"},
	"map[string]*topology.producerYAML": {"the producer entries", ""},
	"map[string]*topology.consumerYAML": {"the consumer entries", ""},
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	cannotRE       = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
	yamlLineRE     = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

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
	if err := yaml.Unmarshal(raw, &f.doc); err != nil {
		return nil, []string{f.syntaxError(err)}, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err = dec.Decode(&f.data)
	if errors.Is(err, io.EOF) {
		return f, nil, nil // an empty file sets nothing
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			out = append(out, f.typeError(e))
		}
		return nil, out, nil
	}
	if err != nil {
		return nil, []string{f.syntaxError(err)}, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, []string{fmt.Sprintf("%s: more than one YAML document", path)}, nil
	}
	return f, nil, nil
}

func (f *fileConfig) syntaxError(err error) string {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf("%s:%s: %s", f.path, m[1], m[2])
	}
	return fmt.Sprintf("%s: %s", f.path, strings.TrimPrefix(err.Error(), "yaml: "))
}

// typeError rewrites one of yaml's decoding errors to name the key path
// and what is allowed there.
func (f *fileConfig) typeError(e string) string {
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		key := m[2]
		if p := findKey(&f.doc, line, key, nil); p != nil {
			key = strings.Join(p, ".")
		}
		msg := fmt.Sprintf("%s:%d: %s: unknown key", f.path, line, key)
		if t, ok := yamlTypes[m[3]]; ok {
			msg += fmt.Sprintf(" in %s (known: %s)", t.what, t.keys)
		}
		return msg
	}
	if m := cannotRE.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		got := map[string]string{"seq": "a list", "map": "a mapping"}[m[2]]
		if got == "" {
			got = fmt.Sprintf("%q", m[3])
		}
		want := m[4]
		if t, ok := yamlTypes[want]; ok {
			want = t.what
			if t.keys != "" {
				want += " (" + t.keys + ")"
			}
		}
		where := ""
		if p := findValue(&f.doc, line, nil); p != nil {
			where = " " + strings.Join(p, ".") + ":"
		}
		return fmt.Sprintf("%s:%d:%s expected %s, got %s", f.path, line, where, want, got)
	}
	if m := regexp.MustCompile(`^line (\d+): (.*)$`).FindStringSubmatch(e); m != nil {
		return fmt.Sprintf("%s:%s: %s", f.path, m[1], m[2])
	}
	return fmt.Sprintf("%s: %s", f.path, e)
}

// findKey returns the path of the mapping key named name on line.
func findKey(n *yaml.Node, line int, name string, path []string) []string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if p := findKey(c, line, name, path); p != nil {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := append(slices.Clone(path), k.Value)
			if k.Line == line && k.Value == name {
				return p
			}
			if q := findKey(v, line, name, p); q != nil {
				return q
			}
		}
	}
	return nil
}

// findValue returns the path of the mapping value that starts on line.
func findValue(n *yaml.Node, line int, path []string) []string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if p := findValue(c, line, path); p != nil {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := append(slices.Clone(path), k.Value)
			if v.Line == line && v.Kind != yaml.ScalarNode {
				if q := findValue(v, line, p); q != nil {
					return q
				}
				return p
			}
			if v.Line == line && v.Kind == yaml.ScalarNode {
				return p
			}
			if q := findValue(v, line, p); q != nil {
				return q
			}
		}
	}
	return nil
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
	sec := f.data.Singularity
	if cfg.Name == CentralCloud {
		sec = f.data.CentralCloud
	}
	if sec == nil {
		return
	}
	if v, ok := f.scalar(&sec.DatabaseURL, cfg.Name+".database_url", ps); ok {
		if msg := checkURL(v); msg != "" {
			ps.add("%s:%d: %s.database_url=%q: %s", f.path, sec.DatabaseURL.Line, cfg.Name, pubsub.RedactURL(v), msg)
		} else {
			cfg.DatabaseURL = v
		}
	}
	for _, key := range f.keysInFileOrder(slices.Collect(maps.Keys(sec.Producers)), cfg.Name, "producers") {
		var handler *yaml.Node
		var e *entryYAML
		if p := sec.Producers[key]; p != nil {
			e = &p.entryYAML
		}
		f.applyEntry(cfg, SideProducer, key, e, handler, ps)
	}
	for _, key := range f.keysInFileOrder(slices.Collect(maps.Keys(sec.Consumers)), cfg.Name, "consumers") {
		var handler *yaml.Node
		var e *entryYAML
		if c := sec.Consumers[key]; c != nil {
			e, handler = &c.entryYAML, &c.Handler
		}
		f.applyEntry(cfg, SideConsumer, key, e, handler, ps)
	}
}

func (f *fileConfig) applyEntry(cfg *ServiceConfig, side, key string, y *entryYAML, handler *yaml.Node, ps *problems) {
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
			ps.add("%s:%d: %s.queue_name=%q: %s", f.path, y.QueueName.Line, name, v, msg)
		} else {
			*ref.queue = v
		}
	}
	if v, ok := f.scalar(&y.Workers, name+".workers", ps); ok {
		if n, msg := parseInt(v, 1); msg != "" {
			ps.add("%s:%d: %s.workers=%q: %s", f.path, y.Workers.Line, name, v, msg)
		} else {
			*ref.workers = n
		}
	}
	if v, ok := f.scalar(&y.MaxRetries, name+".max_retries", ps); ok {
		if n, msg := parseInt(v, 0); msg != "" {
			ps.add("%s:%d: %s.max_retries=%q: %s", f.path, y.MaxRetries.Line, name, v, msg)
		} else {
			*ref.maxRetries = n
		}
	}
	if v, ok := f.scalar(&y.RetryDelayMS, name+".retry_delay_ms", ps); ok {
		if d, msg := parseMillis(v); msg != "" {
			ps.add("%s:%d: %s.retry_delay_ms=%q: %s", f.path, y.RetryDelayMS.Line, name, v, msg)
		} else {
			*ref.retryDelay = d
		}
	}
	if v, ok := f.scalar(&y.Priority, name+".priority", ps); ok {
		if msg := checkPriority(v); msg != "" {
			ps.add("%s:%d: %s.priority=%q: %s", f.path, y.Priority.Line, name, v, msg)
		} else {
			*ref.priority = Priority(v)
		}
	}
	if handler != nil {
		if v, ok := f.scalar(handler, name+".handler", ps); ok {
			if v == "" {
				ps.add("%s:%d: %s.handler=\"\": must not be empty", f.path, handler.Line, name)
			} else {
				*ref.handler = v
			}
		}
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
