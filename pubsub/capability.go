package pubsub

import (
	"fmt"
	"slices"
	"strings"
)

// Capability is something a backend may or may not be able to do.
type Capability uint

const (
	// CapDurable means acknowledged publishes survive a restart of the
	// process and of the backend's server.
	CapDurable Capability = 1 << iota
	// CapDelayedRedelivery means a nack can ask for redelivery after a delay
	// without blocking the other messages of the queue.
	CapDelayedRedelivery
	// CapPriorityOrder means messages of one queue are delivered by
	// per-message priority (higher first), then oldest first.
	CapPriorityOrder
	// CapDeadLetters means the backend stores dead letters and can list,
	// retry and purge them.
	CapDeadLetters
	// CapTransactionalPublish means a message can be published inside the
	// application's own database transaction.
	CapTransactionalPublish
	// CapCrossProcess means several processes can share the queues (a
	// network or database backend, not an in-process one).
	CapCrossProcess
)

var capabilityNames = []struct {
	c    Capability
	name string
}{
	{CapDurable, "durable"},
	{CapDelayedRedelivery, "delayed_redelivery"},
	{CapPriorityOrder, "priority_order"},
	{CapDeadLetters, "dead_letters"},
	{CapTransactionalPublish, "transactional_publish"},
	{CapCrossProcess, "cross_process"},
}

// Capabilities is a set of Capability values.
type Capabilities Capability

// NewCapabilities returns the set holding cs.
func NewCapabilities(cs ...Capability) Capabilities {
	var s Capabilities
	for _, c := range cs {
		s |= Capabilities(c)
	}
	return s
}

// Has reports whether every capability of c is in s.
func (s Capabilities) Has(c Capability) bool { return Capability(s)&c == c }

// Missing returns the capabilities of want that s lacks.
func (s Capabilities) Missing(want Capabilities) Capabilities { return want &^ s }

// Names returns the names of the capabilities in s, in a fixed order.
func (s Capabilities) Names() []string {
	var out []string
	for _, cn := range capabilityNames {
		if s.Has(cn.c) {
			out = append(out, cn.name)
		}
	}
	return out
}

// String lists the capabilities of s separated by commas.
func (s Capabilities) String() string { return strings.Join(s.Names(), ",") }

// String returns the capability's name as used in URLs (require=...).
func (c Capability) String() string { return Capabilities(c).String() }

// ParseCapabilities parses a comma-separated list of capability names.
func ParseCapabilities(list string) (Capabilities, error) {
	var s Capabilities
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(capabilityNames, func(cn struct {
			c    Capability
			name string
		}) bool {
			return cn.name == name
		})
		if i < 0 {
			return 0, fmt.Errorf("unknown capability %q (known: %s)", name, Capabilities(^Capability(0)).String())
		}
		s |= Capabilities(capabilityNames[i].c)
	}
	return s, nil
}
