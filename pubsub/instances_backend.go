package pubsub

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// instanceStore returns the driver's instance registry.
func (b *Backend) instanceStore(op string) (InstanceStore, error) {
	if b.engine.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	st, ok := b.engine.d.(InstanceStore)
	if !ok {
		return nil, fmt.Errorf("%s: %w: instance registry", op, ErrUnsupported)
	}
	return st, nil
}

// RegisterInstance records inst in the instance registry, or refreshes
// its record (a heartbeat): call it at start and then every few seconds.
// Its HeartbeatAt is set to now. It fails with an error wrapping
// ErrInstanceTaken, naming the other process's host and pid, when another
// process registered the same service and id with a heartbeat within
// stale.
func (b *Backend) RegisterInstance(ctx context.Context, inst *Instance, stale time.Duration) error {
	st, err := b.instanceStore("register instance")
	if err != nil {
		return err
	}
	if err := ValidateInstanceID(inst.ID); err != nil {
		return err
	}
	now := time.Now()
	inst.HeartbeatAt = now
	if inst.StartedAt.IsZero() {
		inst.StartedAt = now
	}
	other, err := st.PutInstance(ctx, *inst, now.Add(-stale))
	if err != nil && other.Nonce == stoppedNonce {
		// The other process stopped cleanly: its id is free.
		other, err = st.PutInstance(ctx, *inst, now)
	}
	if err != nil {
		if other.ID != "" {
			return &InstanceTakenError{Other: other, age: now.Sub(other.HeartbeatAt)}
		}
		return b.engine.wrap("register instance", "", err)
	}
	return nil
}

// InstanceTakenError is RegisterInstance's error when another live process
// holds the instance id. It wraps ErrInstanceTaken.
type InstanceTakenError struct {
	// Other is the other process's record.
	Other Instance
	age   time.Duration
}

// Error names the instance and service, and the other process's host, pid
// and how long ago its last heartbeat was.
func (e *InstanceTakenError) Error() string {
	return fmt.Sprintf("register instance %s of %s: %s (host %s, pid %d, heartbeat %s ago)", e.Other.ID, e.Other.Service,
		ErrInstanceTaken, e.Other.Host, e.Other.PID, e.age.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, ErrInstanceTaken) true.
func (e *InstanceTakenError) Unwrap() error { return ErrInstanceTaken }

// stoppedNonce marks the record of an instance that stopped cleanly: its
// id is free at once, and the record ages from its last heartbeat to
// gone, so that what waits for the instance is dead-lettered if it never
// comes back.
const stoppedNonce = "(stopped)"

// StopInstance records that inst stopped cleanly: its id is free for the
// next process at once, the record shows it stale, and, unlike
// DeregisterInstance, what is addressed to it keeps waiting for it until
// it comes back or is gone (InstanceTTL), then is dead-lettered. A record
// that another process holds by now is left alone.
func (b *Backend) StopInstance(ctx context.Context, inst Instance) error {
	st, err := b.instanceStore("stop instance")
	if err != nil {
		return err
	}
	all, err := st.ListInstances(ctx)
	if err != nil {
		return b.engine.wrap("stop instance", "", err)
	}
	for _, rec := range all {
		if rec.Service == inst.Service && rec.ID == inst.ID && rec.Nonce == inst.Nonce {
			rec.Nonce = stoppedNonce
			_, err := st.PutInstance(ctx, rec, time.Now())
			return b.engine.wrap("stop instance", "", err)
		}
	}
	return nil
}

// DeregisterInstance removes an instance's record, as a process that
// stops for good does: nothing waits for it any more.
func (b *Backend) DeregisterInstance(ctx context.Context, service, id string) error {
	st, err := b.instanceStore("deregister instance")
	if err != nil {
		return err
	}
	return b.engine.wrap("deregister instance", "", st.DeleteInstance(ctx, service, id))
}

// Instances lists the instance registry, ordered by service, then id.
func (b *Backend) Instances(ctx context.Context) ([]Instance, error) {
	st, err := b.instanceStore("list instances")
	if err != nil {
		return nil, err
	}
	is, err := st.ListInstances(ctx)
	return is, b.engine.wrap("list instances", "", err)
}

// InstancesOf returns the ids of service's instances not gone: with a
// heartbeat within ttl.
func (b *Backend) InstancesOf(ctx context.Context, service string, ttl time.Duration) ([]string, error) {
	all, err := b.Instances(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var ids []string
	for _, i := range all {
		if i.Service == service && now.Sub(i.HeartbeatAt) <= ttl {
			ids = append(ids, i.ID)
		}
	}
	return ids, nil
}

// PublishTo publishes msgs to instance's queue of queue: only that
// instance's subscriptions (to InstanceQueue(queue, instance)) receive
// them. Each message is marked with MetadataTo.
func (b *Backend) PublishTo(queue, instance string, msgs ...*message.Message) error {
	if err := ValidateInstanceID(instance); err != nil {
		return fmt.Errorf("publish to queue %s: %w", queue, err)
	}
	for _, m := range msgs {
		m.Metadata.Set(MetadataTo, instance)
	}
	return b.Publisher().Publish(InstanceQueue(queue, instance), msgs...)
}

// Broadcast publishes a copy of msgs to every instance of service that is
// not gone (a heartbeat within ttl), stopped ones included: each gets its
// copy when it comes back. With keepLatest the last message is also kept
// as queue's latest, for instances that join later (ReplayLatest). It
// returns the instances it published to. Copies keep their message's id.
func (b *Backend) Broadcast(ctx context.Context, queue, service string, ttl time.Duration, keepLatest bool, msgs ...*message.Message) ([]string, error) {
	ids, err := b.InstancesOf(ctx, service, ttl)
	if err != nil {
		return nil, err
	}
	if keepLatest && len(msgs) > 0 {
		if err := b.KeepLatest(ctx, queue, msgs[len(msgs)-1]); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if err := b.PublishTo(queue, id, CopyMessages(ctx, msgs)...); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// KeepLatest keeps msg as queue's latest broadcast message, which
// ReplayLatest gives instances that join later.
func (b *Backend) KeepLatest(ctx context.Context, queue string, msg *message.Message) error {
	st, err := b.instanceStore("keep latest of queue " + queue)
	if err != nil {
		return err
	}
	latest := LatestMessage{ID: msg.UUID, Payload: msg.Payload, Metadata: maps.Clone(map[string]string(msg.Metadata)), PublishedAt: time.Now()}
	return b.engine.wrap("keep latest of", queue, st.PutLatest(ctx, queue, latest))
}

// CopyMessages returns copies of msgs (same ids, payloads and metadata)
// with ctx as their context: one instance's copies of a fanned-out
// message.
func CopyMessages(ctx context.Context, msgs []*message.Message) []*message.Message {
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		out[i] = copyMessage(ctx, m)
	}
	return out
}

func copyMessage(ctx context.Context, m *message.Message) *message.Message {
	c := message.NewMessage(m.UUID, m.Payload)
	c.Metadata = maps.Clone(m.Metadata)
	if c.Metadata == nil {
		c.Metadata = message.Metadata{}
	}
	c.SetContext(ctx)
	return c
}

// ReplayLatest publishes queue's latest broadcast message to instance,
// as an instance that joins after it was broadcast receives it. It
// reports whether there was one.
func (b *Backend) ReplayLatest(ctx context.Context, queue, instance string) (bool, error) {
	st, err := b.instanceStore("replay latest of queue " + queue)
	if err != nil {
		return false, err
	}
	latest, ok, err := st.Latest(ctx, queue)
	if err != nil || !ok {
		return false, b.engine.wrap("replay latest of", queue, err)
	}
	m := message.NewMessage(latest.ID, latest.Payload)
	m.Metadata = maps.Clone(latest.Metadata)
	if m.Metadata == nil {
		m.Metadata = message.Metadata{}
	}
	m.SetContext(ctx)
	return true, b.PublishTo(queue, instance, m)
}

// DeadLetterInstanceQueue moves what waits in instance's queue of queue to
// the dead letters with reason as their error, and returns how many it
// moved. Messages waiting for a retry move once they are due: call it
// again (the instance janitor runs it on every pass).
func (b *Backend) DeadLetterInstanceQueue(ctx context.Context, queue, instance, reason string) (int, error) {
	name := InstanceQueue(queue, instance)
	if st, err := b.Stats(ctx, name); errors.Is(err, ErrQueueNotFound) || err == nil && st.Pending+st.Scheduled == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.Subscriber().Subscribe(ctx, name)
	if err != nil {
		return 0, err
	}
	moved := 0
	// What is ready arrives at once; a short quiet spell means the queue
	// holds nothing more that is ready.
	quiet := time.NewTimer(250 * time.Millisecond)
	defer quiet.Stop()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return moved, nil
			}
			if d := DeliveryOf(m); d != nil {
				d.MarkDeadLetter(DeadLetterReason{Error: reason})
			}
			m.Ack()
			moved++
			quiet.Reset(250 * time.Millisecond)
		case <-quiet.C:
			return moved, nil
		case <-ctx.Done():
			return moved, ctx.Err()
		}
	}
}

// ExpireInstances dead-letters, with ReasonInstanceGone, what waits in the
// queues of service's instances gone longer than ttl, for each of queues,
// and returns how many messages it moved. A message for an instance is
// never handed to another. The records stay, so that a later pass moves
// retries that fall due meanwhile; an instance that comes back registers
// again and receives what is published from then on.
func (b *Backend) ExpireInstances(ctx context.Context, service string, queues []string, ttl time.Duration) (int, error) {
	all, err := b.Instances(ctx)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	moved := 0
	for _, inst := range all {
		if inst.Service != service || now.Sub(inst.HeartbeatAt) <= ttl {
			continue
		}
		for _, q := range queues {
			n, err := b.DeadLetterInstanceQueue(ctx, q, inst.ID, ReasonInstanceGone)
			moved += n
			if err != nil {
				return moved, err
			}
		}
	}
	return moved, nil
}
