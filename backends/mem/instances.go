package mem

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
)

// registry is a storage's instance registry and latest broadcast messages.
type registry struct {
	mu        sync.Mutex
	instances map[[2]string]pubsub.Instance // by service and id
	latest    map[string]pubsub.LatestMessage
}

var _ pubsub.InstanceStore = (*driver)(nil)

// PutInstance records inst unless another live process holds its id.
func (d *driver) PutInstance(_ context.Context, inst pubsub.Instance, liveAfter time.Time) (pubsub.Instance, error) {
	r := &d.st.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]string{inst.Service, inst.ID}
	if old, ok := r.instances[key]; ok && old.Nonce != inst.Nonce && old.HeartbeatAt.After(liveAfter) {
		return old, fmt.Errorf("%w", pubsub.ErrInstanceTaken)
	}
	if r.instances == nil {
		r.instances = map[[2]string]pubsub.Instance{}
	}
	inst.Consumers = slices.Clone(inst.Consumers)
	r.instances[key] = inst
	return pubsub.Instance{}, nil
}

// ListInstances returns every record, by service, then id.
func (d *driver) ListInstances(context.Context) ([]pubsub.Instance, error) {
	r := &d.st.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Collect(maps.Values(r.instances))
	slices.SortFunc(out, func(a, b pubsub.Instance) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteInstance deletes a record.
func (d *driver) DeleteInstance(_ context.Context, service, id string) error {
	r := &d.st.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.instances, [2]string{service, id})
	return nil
}

// PutLatest keeps a copy of msg as queue's latest broadcast message.
func (d *driver) PutLatest(_ context.Context, queue string, msg pubsub.LatestMessage) error {
	r := &d.st.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		r.latest = map[string]pubsub.LatestMessage{}
	}
	msg.Payload = bytes.Clone(msg.Payload)
	msg.Metadata = maps.Clone(msg.Metadata)
	r.latest[queue] = msg
	return nil
}

// Latest returns queue's latest broadcast message.
func (d *driver) Latest(_ context.Context, queue string) (pubsub.LatestMessage, bool, error) {
	r := &d.st.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.latest[queue]
	return m, ok, nil
}
