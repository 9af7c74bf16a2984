package router

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// Instance defaults.
const (
	// DefaultHeartbeat is how often a router refreshes its instance's
	// record in the registry.
	DefaultHeartbeat = 5 * time.Second
	// DefaultInstanceTTL is how long an instance may go without a
	// heartbeat before what is addressed to it is dead-lettered, when
	// neither Config.InstanceTTL nor the service's instance_ttl says.
	DefaultInstanceTTL = topology.DefaultInstanceTTL
	// DefaultBroadcastRetention is how long an instance's copies of
	// broadcast messages wait for it without a heartbeat, when neither
	// Config.BroadcastRetention nor the service's broadcast_retention
	// says.
	DefaultBroadcastRetention = topology.DefaultBroadcastRetention
	// DefaultStaleAfter is how long an instance may go without a
	// heartbeat and still be live (three missed heartbeats): after it, a
	// process may take over its id. Tools that show the registry use it.
	DefaultStaleAfter = 3 * DefaultHeartbeat
)

// staleAfter is how long without a heartbeat makes an instance stale: a
// process that restarts under its id after that is not refused.
func (r *Router) staleAfter() time.Duration { return 3 * r.cfg.Heartbeat }

// OriginOf returns the instance that published msg, the one a reply to it
// goes to; "" when it came from outside a router.
func OriginOf(msg *message.Message) string { return msg.Metadata.Get(pubsub.MetadataOrigin) }

// InstanceOf returns the instance msg was delivered to on an addressed or
// broadcast queue; "" on a work queue.
func InstanceOf(msg *message.Message) string {
	if d := pubsub.DeliveryOf(msg); d != nil {
		_, inst := pubsub.SplitInstanceQueue(d.Queue)
		return inst
	}
	return ""
}

// consumingService is the service that consumes what service produces:
// the topology's other service (Singularity's producer queues are
// CentralCloud's consumer queues and the other way round, whatever the
// queues are named).
func consumingService(service string) string {
	if service == topology.CentralCloud {
		return topology.Singularity
	}
	return topology.CentralCloud
}

// subscribedQueue is the queue a consumer's workers subscribe to: the
// queue itself for work delivery, this instance's queue of it otherwise.
func (r *Router) subscribedQueue(c topology.Consumer) string {
	if c.Delivery == topology.DeliveryAddressed || c.Delivery == topology.DeliveryBroadcast {
		return pubsub.InstanceQueue(c.Queue, r.cfg.Service.InstanceID)
	}
	return c.Queue
}

// instance is this router's record in the instance registry.
func (r *Router) instance() *pubsub.Instance {
	host, _ := os.Hostname()
	inst := &pubsub.Instance{
		Service: r.Service(), ID: r.cfg.Service.InstanceID, Host: host, PID: os.Getpid(),
		Version: r.cfg.Version, Nonce: r.nonce, StartedAt: r.startedAt,
	}
	for _, c := range r.consumers {
		inst.Consumers = append(inst.Consumers, pubsub.InstanceConsumer{Queue: c.Queue, Workers: c.Workers})
	}
	return inst
}

// register records the instance in the registry; a new instance (no
// record heard from within BroadcastRetention, so no copies kept for it)
// gets the latest message of each broadcast queue it consumes.
func (r *Router) register(ctx context.Context) error {
	b := r.cfg.Backend
	known, err := b.InstancesOf(ctx, r.Service(), r.cfg.BroadcastRetention)
	if err != nil {
		return fmt.Errorf("router %s: %w", r.Service(), err)
	}
	err = b.RegisterInstance(ctx, r.instance(), r.staleAfter())
	if other := deadOnThisHost(err); other != nil {
		// A process of this host that was killed (its record still
		// fresh) and is restarted under its id: take the id over.
		r.logger.Warn("taking over the instance id of a process that is gone", "instance", other.ID, "pid", other.PID)
		err = b.RegisterInstance(ctx, r.instance(), 0)
	}
	if err != nil {
		return fmt.Errorf("router %s: %w", r.Service(), err)
	}
	if slices.Contains(known, r.cfg.Service.InstanceID) {
		return nil
	}
	for _, c := range r.consumers {
		if c.Delivery != topology.DeliveryBroadcast {
			continue
		}
		if _, err := b.ReplayLatest(ctx, c.Queue, r.cfg.Service.InstanceID); err != nil {
			return fmt.Errorf("router %s: %w", r.Service(), err)
		}
	}
	return nil
}

// deadOnThisHost returns the record a RegisterInstance error names when
// it is that of a process of this host that no longer runs, else nil.
func deadOnThisHost(err error) *pubsub.Instance {
	var taken *pubsub.InstanceTakenError
	if !errors.As(err, &taken) {
		return nil
	}
	host, _ := os.Hostname()
	if taken.Other.Host != host || taken.Other.PID <= 0 || processAlive(taken.Other.PID) {
		return nil
	}
	return &taken.Other
}

// registered keeps the instance registered (keepRegistered) until the
// function it returns is called.
func (r *Router) registered(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.keepRegistered(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// keepRegistered refreshes the instance's record every Heartbeat and,
// for the addressed and broadcast queues the service produces to,
// dead-letters what waits for instances gone longer than InstanceTTL
// (addressed) or BroadcastRetention (broadcast), until ctx ends; then it
// records that the instance stopped (what is addressed to it keeps
// waiting for it).
func (r *Router) keepRegistered(ctx context.Context) {
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := r.cfg.Backend.StopInstance(dctx, *r.instance()); err != nil {
				r.logger.Warn("recording the instance's stop failed", "error", err)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := r.cfg.Backend.RegisterInstance(ctx, r.instance(), r.staleAfter()); err != nil && ctx.Err() == nil {
			r.logger.Error("instance heartbeat failed", "instance", r.cfg.Service.InstanceID, "error", err)
		}
		if time.Since(lastSweep) >= r.sweepEvery() {
			lastSweep = time.Now()
			r.sweepGone(ctx)
		}
	}
}

// sweepEvery is how often gone instances are swept: often enough that a
// message waits little past InstanceTTL or BroadcastRetention, never more
// than once a minute.
func (r *Router) sweepEvery() time.Duration {
	return min(time.Minute, max(r.cfg.Heartbeat, min(r.cfg.InstanceTTL, r.cfg.BroadcastRetention)/10))
}

// keptFor is how long what waits in an instance's queue of a queue with
// delivery d waits for an instance without a heartbeat: BroadcastRetention
// on a broadcast queue, InstanceTTL on an addressed one (a copy of a
// message addressed to all included).
func (r *Router) keptFor(d topology.Delivery) time.Duration {
	if d == topology.DeliveryBroadcast {
		return r.cfg.BroadcastRetention
	}
	return r.cfg.InstanceTTL
}

// sweepGone dead-letters what waits for gone instances in the addressed
// and broadcast queues this service produces to: addressed queues first,
// then broadcast ones, each by how long it waits.
func (r *Router) sweepGone(ctx context.Context) {
	svc := consumingService(r.Service())
	for _, d := range []topology.Delivery{topology.DeliveryAddressed, topology.DeliveryBroadcast} {
		var queues []string
		for _, p := range r.cfg.Service.Producers {
			if p.Delivery == d {
				queues = append(queues, p.Queue)
			}
		}
		if len(queues) == 0 {
			continue
		}
		n, err := r.cfg.Backend.ExpireInstances(ctx, svc, queues, r.keptFor(d))
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("dead-lettering messages of gone instances failed", "service", svc, "delivery", d, "error", err)
		}
		if n > 0 {
			r.logger.Warn("dead-lettered messages of gone instances", "service", svc, "delivery", d, "messages", n,
				"after", r.keptFor(d), "reason", pubsub.ReasonInstanceGone)
		}
	}
}
