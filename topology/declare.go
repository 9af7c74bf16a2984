package topology

import (
	"context"
	"fmt"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Spec returns the declaration of queue as the service sees it: the
// settings of its consumer or producer entry for the queue, else the
// seed's declaration of a queue of the topology. False for a queue that is
// not in the topology.
func (s *ServiceConfig) Spec(queue string) (pubsub.QueueSpec, bool) {
	if c, ok := s.Consumer(queue); ok {
		return c.Spec(), true
	}
	if p, ok := s.Producer(queue); ok {
		return p.Spec(), true
	}
	for _, q := range Queues() {
		if q.Name == queue {
			return q, true
		}
	}
	return pubsub.QueueSpec{}, false
}

// Init creates or upgrades b's storage and declares the six queues of the
// topology with the settings cfg gives them (see Spec), so that each has
// its priority and retry settings before its first message. It is
// idempotent: `quantumflow init`, and the demo before it starts.
func Init(ctx context.Context, b *pubsub.Backend, cfg ServiceConfig) ([]pubsub.QueueSpec, error) {
	if err := b.Init(ctx); err != nil {
		return nil, fmt.Errorf("init %s: %w", b, err)
	}
	specs := make([]pubsub.QueueSpec, 0, len(QueueNames()))
	for _, q := range Queues() {
		spec, _ := cfg.Spec(q.Name)
		if err := b.DeclareQueue(ctx, spec); err != nil {
			return nil, fmt.Errorf("declare queue %s: %w", spec.Name, err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}
