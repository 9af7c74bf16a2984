package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// producerView is a Producer as JSON and YAML show it: the retry delay in
// whole milliseconds under the seed's key retry_delay_ms.
type producerView struct {
	Key          string   `json:"key" yaml:"-"`
	Queue        string   `json:"queue_name" yaml:"queue_name"`
	Workers      int      `json:"workers" yaml:"workers"`
	MaxRetries   int      `json:"max_retries" yaml:"max_retries"`
	RetryDelayMS int64    `json:"retry_delay_ms" yaml:"retry_delay_ms"`
	Priority     Priority `json:"priority" yaml:"priority"`
	Delivery     Delivery `json:"delivery" yaml:"delivery"`
	// MessageTTL is a Go duration ("10m"), left out when there is none.
	MessageTTL  string `json:"message_ttl,omitempty" yaml:"message_ttl,omitempty"`
	DedupWindow string `json:"dedup_window,omitempty" yaml:"dedup_window,omitempty"`
}

// consumerView is a Consumer as JSON and YAML show it.
type consumerView struct {
	Key          string   `json:"key" yaml:"-"`
	Queue        string   `json:"queue_name" yaml:"queue_name"`
	Workers      int      `json:"workers" yaml:"workers"`
	Handler      string   `json:"handler" yaml:"handler"`
	MaxRetries   int      `json:"max_retries" yaml:"max_retries"`
	RetryDelayMS int64    `json:"retry_delay_ms" yaml:"retry_delay_ms"`
	Priority     Priority `json:"priority" yaml:"priority"`
	Delivery     Delivery `json:"delivery" yaml:"delivery"`
	DedupWindow  string   `json:"dedup_window,omitempty" yaml:"dedup_window,omitempty"`
}

func (p Producer) view() producerView {
	v := producerView{Key: p.Key, Queue: p.Queue, Workers: p.Workers, MaxRetries: p.MaxRetries, RetryDelayMS: p.RetryDelay.Milliseconds(),
		Priority: p.Priority, Delivery: p.Delivery, DedupWindow: windowString(p.DedupWindow)}
	if p.MessageTTL != 0 {
		v.MessageTTL = formatDuration(p.MessageTTL)
	}
	return v
}

func (c Consumer) view() consumerView {
	return consumerView{c.Key, c.Queue, c.Workers, c.Handler, c.MaxRetries, c.RetryDelay.Milliseconds(), c.Priority, c.Delivery, windowString(c.DedupWindow)}
}

// windowString shows a dedup window as a Go duration, "" for zero (the
// default).
func windowString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return formatDuration(d)
}

// parseWindowString reads what windowString writes.
func parseWindowString(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("dedup_window %q: %w", s, err)
	}
	return d, nil
}

// MarshalJSON shows the retry delay as retry_delay_ms, a number.
func (p Producer) MarshalJSON() ([]byte, error) { return json.Marshal(p.view()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Producer) UnmarshalJSON(b []byte) error {
	var v producerView
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	w, err := parseWindowString(v.DedupWindow)
	if err != nil {
		return err
	}
	*p = Producer{Key: v.Key, Queue: v.Queue, Workers: v.Workers, MaxRetries: v.MaxRetries,
		RetryDelay: time.Duration(v.RetryDelayMS) * time.Millisecond, Priority: v.Priority, Delivery: v.Delivery, DedupWindow: w}
	if v.MessageTTL != "" {
		d, err := time.ParseDuration(v.MessageTTL)
		if err != nil {
			return fmt.Errorf("message_ttl: %w", err)
		}
		p.MessageTTL = d
	}
	return nil
}

// MarshalJSON shows the retry delay as retry_delay_ms, a number.
func (c Consumer) MarshalJSON() ([]byte, error) { return json.Marshal(c.view()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Consumer) UnmarshalJSON(b []byte) error {
	var v consumerView
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	w, err := parseWindowString(v.DedupWindow)
	if err != nil {
		return err
	}
	*c = Consumer{Key: v.Key, Queue: v.Queue, Handler: v.Handler, Workers: v.Workers, MaxRetries: v.MaxRetries,
		RetryDelay: time.Duration(v.RetryDelayMS) * time.Millisecond, Priority: v.Priority, Delivery: v.Delivery, DedupWindow: w}
	return nil
}

// serviceView is a ServiceConfig as JSON shows it: instance_ttl and
// broadcast_retention as Go durations ("24h"), left out when zero.
type serviceView struct {
	Name               string     `json:"name"`
	DatabaseURL        string     `json:"database_url"`
	MessagingURL       string     `json:"messaging_url,omitempty"`
	InstanceID         string     `json:"instance_id"`
	InstanceTTL        string     `json:"instance_ttl,omitempty"`
	BroadcastRetention string     `json:"broadcast_retention,omitempty"`
	Producers          []Producer `json:"producers"`
	Consumers          []Consumer `json:"consumers"`
}

// MarshalJSON shows instance_ttl and broadcast_retention as Go durations.
func (s ServiceConfig) MarshalJSON() ([]byte, error) {
	v := serviceView{Name: s.Name, DatabaseURL: s.DatabaseURL, MessagingURL: s.MessagingURL, InstanceID: s.InstanceID,
		Producers: s.Producers, Consumers: s.Consumers}
	if s.InstanceTTL != 0 {
		v.InstanceTTL = formatDuration(s.InstanceTTL)
	}
	if s.BroadcastRetention != 0 {
		v.BroadcastRetention = formatDuration(s.BroadcastRetention)
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *ServiceConfig) UnmarshalJSON(b []byte) error {
	var v serviceView
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	out := ServiceConfig{Name: v.Name, DatabaseURL: v.DatabaseURL, MessagingURL: v.MessagingURL, InstanceID: v.InstanceID,
		Producers: v.Producers, Consumers: v.Consumers}
	for _, w := range []struct {
		key, text string
		field     *time.Duration
	}{{SettingInstanceTTL, v.InstanceTTL, &out.InstanceTTL}, {SettingBroadcastRetention, v.BroadcastRetention, &out.BroadcastRetention}} {
		if w.text == "" {
			continue
		}
		d, err := time.ParseDuration(w.text)
		if err != nil {
			return fmt.Errorf("%s: %w", w.key, err)
		}
		*w.field = d
	}
	*s = out
	return nil
}

// MarshalYAML writes the entry as the configuration file has it (its key
// is the mapping key around it).
func (p Producer) MarshalYAML() (any, error) { return p.view(), nil }

// MarshalYAML writes the entry as the configuration file has it.
func (c Consumer) MarshalYAML() (any, error) { return c.view(), nil }

// Comments MarshalYAML puts on the producers and consumers keys, so that
// `quantumflow config show` says what each side's workers count.
const (
	producersComment = "workers: the most publishes of the queue this service runs at once"
	consumersComment = "workers: the most messages of the queue this service handles at once"
)

// MarshalYAML writes the service's section of a configuration file:
// database_url, messaging_url when set, instance_id, instance_ttl and
// broadcast_retention when set, then producers and consumers keyed by
// entry key, in the seed's order. Load reads it back to the same
// configuration.
func (s ServiceConfig) MarshalYAML() (any, error) { return s.node() }

// node is MarshalYAML's node, which MarshalFile puts in its document as it
// is: encoding a node into another drops its comments.
func (s ServiceConfig) node() (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	if err := addPair(n, "database_url", s.DatabaseURL); err != nil {
		return nil, err
	}
	if s.MessagingURL != "" {
		if err := addPair(n, "messaging_url", s.MessagingURL); err != nil {
			return nil, err
		}
	}
	if err := addPair(n, "instance_id", s.InstanceID); err != nil {
		return nil, err
	}
	for _, w := range []struct {
		key string
		d   time.Duration
	}{{SettingInstanceTTL, s.InstanceTTL}, {SettingBroadcastRetention, s.BroadcastRetention}} {
		if w.d != 0 {
			n.Content = append(n.Content, scalarNode(w.key), scalarNode(formatDuration(w.d)))
		}
	}
	prod := &yaml.Node{Kind: yaml.MappingNode}
	for _, p := range s.Producers {
		if err := addPair(prod, p.Key, p); err != nil {
			return nil, err
		}
	}
	cons := &yaml.Node{Kind: yaml.MappingNode}
	for _, c := range s.Consumers {
		if err := addPair(cons, c.Key, c); err != nil {
			return nil, err
		}
	}
	pk, ck := scalarNode("producers"), scalarNode("consumers")
	pk.HeadComment, ck.HeadComment = producersComment, consumersComment
	n.Content = append(n.Content, pk, prod, ck, cons)
	return n, nil
}

// MarshalFile writes a configuration file holding the given services'
// sections, in the format Load reads: `quantumflow config show --yaml`
// output can be saved and loaded back.
func MarshalFile(cfgs ...ServiceConfig) ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, c := range cfgs {
		n, err := c.node()
		if err != nil {
			return nil, err
		}
		root.Content = append(root.Content, scalarNode(c.Name), n)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func addPair(m *yaml.Node, key string, v any) error {
	var val yaml.Node
	if err := val.Encode(v); err != nil {
		return err
	}
	m.Content = append(m.Content, scalarNode(key), &val)
	return nil
}

func scalarNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
