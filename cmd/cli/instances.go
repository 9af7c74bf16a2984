package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// The registry's timing is the router's, so that the tool and the
// services agree on which instances are live.
const (
	// heartbeat is how often consume --instance refreshes its record.
	heartbeat = router.DefaultHeartbeat
	// staleAfter is how long without a heartbeat makes an instance stale:
	// three missed heartbeats, as the router counts (and then its id may
	// be taken by another process).
	staleAfter = router.DefaultStaleAfter
)

// waitOf is how long a message of a queue with delivery mode waits for an
// instance without a heartbeat: cfg's broadcast_retention on a broadcast
// queue, its instance_ttl otherwise, as the producing service's router
// sweeps when it reads the same settings. A fan-out goes to the instances
// heard from within it.
func waitOf(cfg topology.ServiceConfig, mode topology.Delivery) time.Duration {
	if mode == topology.DeliveryBroadcast {
		return cfg.BroadcastRetention
	}
	return cfg.InstanceTTL
}

// deliveryOf returns queue's delivery mode in cfg: its consumer entry's,
// else its producer entry's; work for a queue outside the topology.
func deliveryOf(cfg topology.ServiceConfig, queue string) topology.Delivery {
	if c, ok := cfg.Consumer(queue); ok {
		return c.Delivery
	}
	if p, ok := cfg.Producer(queue); ok {
		return p.Delivery
	}
	return topology.DeliveryWork
}

// consumingService returns the service that consumes queue, whose
// instances addressed and broadcast messages go to.
func consumingService(cfg topology.ServiceConfig, queue string) string {
	if _, ok := cfg.Consumer(queue); ok {
		return cfg.Name
	}
	for _, s := range topology.Services() {
		d, _ := topology.Default(s)
		if _, ok := d.Consumer(queue); ok {
			return s
		}
	}
	return ""
}

// queueArg splits a QUEUE argument, which may name an instance's queue
// (QUEUE@INSTANCE), and joins it with the instance named by flag ("" when
// the flag is not given). Naming two different instances is a usage
// error.
func queueArg(arg, flag, flagValue string) (queue, instance string, err error) {
	if err := pubsub.ValidateQueueName(arg); err != nil {
		return "", "", err
	}
	queue, instance = pubsub.SplitInstanceQueue(arg)
	switch {
	case flagValue == "":
	case instance != "" && instance != flagValue:
		return "", "", usageErrorf("%s names instance %s and --%s names %s: name one", arg, instance, flag, flagValue)
	default:
		if err := checkInstanceFlag(flag, flagValue); err != nil {
			return "", "", err
		}
		instance = flagValue
	}
	return queue, instance, nil
}

// checkInstanceFlag refuses an instance id that is not one.
func checkInstanceFlag(flag, id string) error {
	if err := pubsub.ValidateInstanceID(id); err != nil {
		return usageErrorf("--%s %q: not an instance id (1-64 letters, digits, '_', '.' or '-', and not %q)", flag, id, pubsub.InstanceAll)
	}
	return nil
}

// instanceFlag is the --instance filter, "" when not given.
func (a *app) instanceFlag() string {
	if a.instanceSet {
		return a.instance
	}
	return ""
}

// queueTarget reads a command's QUEUE argument (QUEUE or QUEUE@INSTANCE)
// with --instance, loads the configuration, and returns the queue's
// delivery mode; an instance named on a work queue is bad usage.
func (a *app) queueTarget(cmd, arg string) (queue, instance string, cfg topology.ServiceConfig, mode topology.Delivery, err error) {
	if queue, instance, err = queueArg(arg, "instance", a.instanceFlag()); err != nil {
		return
	}
	if cfg, err = a.loadConfig(); err != nil {
		return
	}
	mode = deliveryOf(cfg, queue)
	err = needsNoInstance(cmd, queue, instance, mode, "instance")
	return
}

// needsNoInstance refuses an instance named on a work queue, where any
// instance takes any message.
func needsNoInstance(cmd, queue, instance string, mode topology.Delivery, flag string) error {
	if mode == topology.DeliveryWork && instance != "" {
		return usageErrorf("%s: queue %s has %s delivery (any instance takes any of its messages): it has no instance queues; drop --%s", cmd, queue, mode, flag)
	}
	return nil
}

// instanceQueues returns the instance queues of queue the backend knows,
// ordered by instance.
func instanceQueues(ctx context.Context, b *pubsub.Backend, queue string) ([]string, error) {
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	var names []string
	for _, qi := range infos {
		if q, inst := pubsub.SplitInstanceQueue(qi.Name); q == queue && inst != "" {
			names = append(names, qi.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// registration keeps an instance's record in the registry fresh while
// consume runs, and removes it at the end.
type registration struct {
	b    *pubsub.Backend
	inst *pubsub.Instance
	stop context.CancelFunc
	done sync.WaitGroup
}

// registerInstance records inst as consume --instance runs it. A live
// process under the same service and id is an error naming its host. A
// new instance of a broadcast queue (none heard from under its id within
// retention, so no copies kept for it) gets the queue's latest message
// first, as a router that joins does.
func (a *app) registerInstance(ctx context.Context, b *pubsub.Backend, inst *pubsub.Instance, broadcast string, retention time.Duration) (*registration, error) {
	known, err := b.InstancesOf(ctx, inst.Service, retention)
	if err != nil {
		return nil, err
	}
	if err := b.RegisterInstance(ctx, inst, staleAfter); err != nil {
		return nil, err
	}
	r := &registration{b: b, inst: inst}
	if broadcast != "" && !slices.Contains(known, inst.ID) {
		if _, err := b.ReplayLatest(ctx, broadcast, inst.ID); err != nil {
			r.close()
			return nil, err
		}
	}
	hbCtx, stop := context.WithCancel(ctx)
	r.stop = stop
	log := a.logger()
	r.done.Go(func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
			}
			if err := b.RegisterInstance(hbCtx, inst, staleAfter); err != nil && hbCtx.Err() == nil {
				log.Error("instance heartbeat failed", "instance", inst.ID, "error", pubsub.RedactError(err))
			}
		}
	})
	return r, nil
}

// close stops the heartbeats and records that the instance stopped.
func (r *registration) close() {
	if r.stop != nil {
		r.stop()
	}
	r.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.b.StopInstance(ctx, *r.inst)
}

// newInstance is the record of this process as instance id of service,
// consuming queue with workers.
func newInstance(service, id, queue string, workers int) *pubsub.Instance {
	host, _ := os.Hostname()
	ver, _ := version()
	return &pubsub.Instance{
		Service: service, ID: id, Host: host, PID: os.Getpid(), Version: "quantumflow " + ver,
		Nonce: watermill.NewUUID(), Consumers: []pubsub.InstanceConsumer{{Queue: queue, Workers: workers}},
	}
}

// instanceRow is one line of `instances --json`.
type instanceRow struct {
	Service     string                    `json:"service"`
	ID          string                    `json:"id"`
	State       string                    `json:"state"`
	Host        string                    `json:"host"`
	PID         int                       `json:"pid"`
	Version     string                    `json:"version,omitempty"`
	StartedAt   time.Time                 `json:"started_at"`
	HeartbeatAt time.Time                 `json:"heartbeat_at"`
	Consumers   []pubsub.InstanceConsumer `json:"consumers"`
}

func (a *app) instancesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "instances",
		Short: "List the service instances in the instance registry",
		Long: `instances lists the instance registry: every service process (router, or
consume --instance) with its state, host, pid, version, start, last heartbeat
and the queues it consumes with their workers. STATE is live (a heartbeat in the
last ` + staleAfter.String() + `), stale (none since: the process is stopped or stuck; another
may take its id) or gone (none within instance_ttl, 24h by default: what is
addressed to it is dead-lettered; its copies of broadcast messages wait for it
until broadcast_retention, 168h by default). instance_ttl comes from the
configuration of --service (--instance-ttl, QUANTUM_FLOW_INSTANCE_TTL, the
file). --service lists one service's instances only. With --json, one object
per instance.`,
		Example: `  quantumflow instances
  quantumflow instances --service singularity --json`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			cfg, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			all, err := b.Instances(ctx)
			if err != nil {
				return err
			}
			now := time.Now()
			out := cmd.OutOrStdout()
			t := newTable(out, "SERVICE", "ID", "STATE", "HOST", "PID", "VERSION", "STARTED", "LAST HEARTBEAT", "CONSUMERS")
			for _, i := range all {
				if cmd.Flags().Changed("service") && i.Service != cfg.Name {
					continue
				}
				state := i.State(now, staleAfter, cfg.InstanceTTL)
				if a.jsonOut {
					row := instanceRow{i.Service, i.ID, state, i.Host, i.PID, i.Version, i.StartedAt, i.HeartbeatAt, i.Consumers}
					if row.Consumers == nil {
						row.Consumers = []pubsub.InstanceConsumer{}
					}
					if err := writeJSONLine(out, row); err != nil {
						return err
					}
					continue
				}
				cons := make([]string, len(i.Consumers))
				for k, c := range i.Consumers {
					cons[k] = c.Queue + ":" + strconv.Itoa(c.Workers)
				}
				t.row(i.Service, i.ID, state, dash(i.Host), strconv.Itoa(i.PID), dash(i.Version),
					i.StartedAt.UTC().Format(time.RFC3339), max(now.Sub(i.HeartbeatAt), 0).Round(time.Second).String()+" ago",
					dash(strings.Join(cons, ",")))
			}
			if a.jsonOut {
				return nil
			}
			return t.flush()
		}),
	}
}

// splitName splits a queue name for output: the queue, and the instance
// of an instance's queue ("" for a plain queue).
func splitName(name string) (queue, instance string) { return pubsub.SplitInstanceQueue(name) }

// byQueueThenInstance orders queue names so that each queue's instance
// queues follow it.
func byQueueThenInstance(a, b string) int {
	qa, ia := splitName(a)
	qb, ib := splitName(b)
	return cmp.Or(cmp.Compare(qa, qb), cmp.Compare(ia, ib))
}

// isNotFound reports whether err says a queue does not exist.
func isNotFound(err error) bool { return errors.Is(err, pubsub.ErrQueueNotFound) }
