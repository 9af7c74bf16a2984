package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// publishBatch is how many messages go to the backend in one Publish call:
// backends write a call's messages as one batch.
const publishBatch = 100

func (a *app) publishCommand() *cobra.Command {
	var f publishFlags
	c := &cobra.Command{
		Use:   "publish QUEUE --payload JSON [--to INSTANCE]",
		Short: "Publish messages to a queue",
		Long: `publish sends --count copies (at most ` + strconv.Itoa(MaxPublishCount) + `) of a JSON payload to a queue of
the topology (or one the backend already knows) and prints each message's id;
with --json one object per message: id, queue and, on addressed and broadcast
queues, instance. --priority overrides the queue's priority for these
messages: an integer (higher first) or "normal"/"high".

The queue's delivery mode, from the configuration, decides where a message
goes:
  work       to the queue, for any instance; --to is refused (exit 2).
  addressed  --to INSTANCE is required (exit 2 without): the message waits in
             that instance's queue; --to all sends a copy to every instance of
             the consuming service not gone (a heartbeat within instance_ttl,
             24h by default).
  broadcast  no --to needed: every instance heard from within
             broadcast_retention (168h by default) gets a copy, which waits
             for it, and the message is kept as the queue's latest for
             instances that join later; --to INSTANCE sends that instance
             alone a copy.
instance_ttl and broadcast_retention come from the configuration of --service
(--instance-ttl, --broadcast-retention, QUANTUM_FLOW_INSTANCE_TTL,
QUANTUM_FLOW_BROADCAST_RETENTION, the file).
On addressed and broadcast queues each line of text output is "ID INSTANCE",
one per copy. --instance ID marks the messages as published by instance ID,
so that replies (consensus results) are addressed to it.

The payload of a topology queue must satisfy the queue's contract (package
contracts: required fields, types, ranges, a schema_version no newer than
this binary knows); a payload that does not is refused with exit 2, naming
the field, and nothing is published. The messages then carry the metadata
quantumflow_content_type and quantumflow_schema. --raw publishes the payload
as is (any JSON): a typed consumer dead-letters what its contract refuses.

--delay 30s or --at 2026-12-24T18:00:00Z publishes the messages delayed or
scheduled: they count as scheduled in stats, pending lists them with their
AVAILABLE_AT, and no consumer gets them before (a bad value, or both flags,
is a usage error, exit 2). --ttl 10m makes them expire: not taken by then,
they become dead letters with the reason "expired"; without it the queue's
message_ttl applies (producers' entries in the configuration).

--dedup-key KEY publishes the message with a dedup key: within the queue's
dedup_window (2m by default) a message already published with KEY on the
queue makes this publish store nothing, and the id printed is the stored
message's (with --json, "duplicate": true). It takes --count 1 (exit 2
otherwise). A payload over the backend's limit (1 MiB by default on every
backend) is refused (exit 2), nothing published.`,
		Example: `  quantumflow publish proposals_for_consensus_queue --payload '{"id":"p1","instance":"ops-1","change":"tune cache","risk":0.2}' --instance ops-1
  quantumflow publish rollback_triggers_queue --payload '{"id":"rb1","instance":"singularity-2","reason":"error rate"}' --to singularity-2 --json
  quantumflow publish rollback_triggers_queue --payload '{"id":"rb2","instance":"all","reason":"bad deploy"}' --to all
  quantumflow publish guardian_safety_profiles_queue --payload '{"id":"sp1","version":3,"max_risk":0.5}'
  quantumflow publish proposals_for_consensus_queue --payload '{"id":"p2","instance":"ops-1","change":"resize pool","risk":0.4}' --delay 30s
  quantumflow publish proposals_for_consensus_queue --payload '{"id":"p3","instance":"ops-1","change":"drop index","risk":0.9}' --at 2026-12-24T18:00:00Z --ttl 24h
  quantumflow publish proposals_for_consensus_queue --payload '{"anything":"goes"}' --raw
  quantumflow publish metrics_to_guardian_queue --payload '{"id":"m-r17","instance":"ops-1","error_rate":0.01,"latency_ms":12}' --dedup-key run-r-17`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			return a.publish(ctx, cmd, &f, args[0])
		}),
	}
	f.register(c)
	return c
}

// checkContract checks payload against queue's contract, if it has one,
// and returns md with the contract's metadata added (unless given): a
// refusal is a usage error naming the field.
func checkContract(queue string, payload []byte, md map[string]string) (map[string]string, error) {
	s, ok, err := contracts.Check(queue, payload, md)
	if err != nil {
		return nil, usageErrorf("publish: %v; nothing published (--raw publishes it as is)", err)
	}
	if !ok {
		return md, nil
	}
	if md == nil {
		md = map[string]string{}
	}
	md[contracts.MetadataContentType] = cmp.Or(md[contracts.MetadataContentType], contracts.ContentTypeJSON)
	md[contracts.MetadataSchema] = cmp.Or(md[contracts.MetadataSchema], s.String())
	return md, nil
}

// checkDedupKey refuses a --dedup-key no backend takes, or with more than
// one copy (all but the first would be dropped as duplicates).
func checkDedupKey(cmd *cobra.Command, key string, count int) error {
	if !cmd.Flags().Changed("dedup-key") {
		return nil
	}
	m := message.NewMessage("check", nil)
	pubsub.SetDedupKey(m, key)
	if err := pubsub.ValidateMessage(m, 0); err != nil {
		return usageErrorf("--dedup-key %s: 1-%d bytes of UTF-8 text without control characters", short(strconv.Quote(key), 80), pubsub.MaxDedupKeyLen)
	}
	if count != 1 {
		return usageErrorf("--dedup-key with --count %d: every copy would carry the key and only the first be stored; publish one", count)
	}
	return nil
}

// publication sends messages to a queue as its delivery mode says, and
// prints each message or copy sent.
type publication struct {
	b       *pubsub.Backend
	out     io.Writer
	json    bool
	queue   string
	mode    topology.Delivery
	to      string // an instance, pubsub.InstanceAll or ""
	service string // the consuming service, whose instances get copies
	// wait is how long what is published waits for an instance without
	// a heartbeat (waitOf): a fan-out goes to the instances heard from
	// within it.
	wait   time.Duration
	origin string
	log    *slog.Logger

	// targets are the instances of a fan-out (addressed to all, or a
	// broadcast), found once by prepare.
	targets []string
	// sent are the ids of the batch being sent, as sent.
	sent map[*message.Message]string
}

// prepare finds the instances a fan-out goes to and declares the instance
// queues the messages go to, with the queue's settings (a rollback's copy
// keeps its high priority).
func (p *publication) prepare(ctx context.Context, cfg topology.ServiceConfig) error {
	switch {
	case p.mode == topology.DeliveryWork:
		return ensureDeclared(ctx, p.b, cfg, p.queue)
	case p.to != "" && p.to != pubsub.InstanceAll:
		p.warnUnregistered(ctx)
		return ensureDeclared(ctx, p.b, cfg, p.queue, p.queue, pubsub.InstanceQueue(p.queue, p.to))
	}
	ids, err := p.b.InstancesOf(ctx, p.service, p.wait)
	if err != nil {
		return err
	}
	if p.to == pubsub.InstanceAll && len(ids) == 0 {
		return fmt.Errorf("publish to queue %s --to all: no instance of %s is registered with a heartbeat in the last %s (instance_ttl): nothing published", p.queue, p.service, p.wait)
	}
	p.targets = ids
	names := []string{p.queue}
	for _, id := range ids {
		names = append(names, pubsub.InstanceQueue(p.queue, id))
	}
	return ensureDeclared(ctx, p.b, cfg, p.queue, names...)
}

// warnUnregistered warns when a message is addressed to an instance the
// registry does not know: it waits until an instance of that id consumes.
func (p *publication) warnUnregistered(ctx context.Context) {
	ids, err := p.b.InstancesOf(ctx, p.service, p.wait)
	if err == nil && !slices.Contains(ids, p.to) {
		p.log.Warn("the instance is not registered: its messages wait in its queue until it consumes",
			"instance", p.to, "service", p.service, "queue", pubsub.InstanceQueue(p.queue, p.to))
	}
}

// send publishes one batch and prints what was sent.
func (p *publication) send(ctx context.Context, msgs []*message.Message) error {
	// The ids as sent: a duplicate comes back with the stored one's.
	p.sent = make(map[*message.Message]string, len(msgs))
	for _, m := range msgs {
		p.sent[m] = m.UUID
	}
	switch {
	case p.mode == topology.DeliveryWork:
		if err := p.b.Publisher().Publish(p.queue, msgs...); err != nil {
			return err
		}
		return p.print(msgs, "")
	case p.to != "" && p.to != pubsub.InstanceAll:
		if err := p.b.PublishTo(p.queue, p.to, msgs...); err != nil {
			return err
		}
		return p.print(msgs, p.to)
	case p.mode == topology.DeliveryBroadcast:
		ids, err := p.b.Broadcast(ctx, p.queue, p.service, p.wait, true, msgs...)
		if err != nil {
			return err
		}
		p.targets = ids
		for _, id := range ids {
			if err := p.print(msgs, id); err != nil {
				return err
			}
		}
		return nil
	}
	for _, id := range p.targets {
		if err := p.b.PublishTo(p.queue, id, pubsub.CopyMessages(ctx, msgs)...); err != nil {
			return err
		}
		if err := p.print(msgs, id); err != nil {
			return err
		}
	}
	return nil
}

func (p *publication) print(msgs []*message.Message, instance string) error {
	for _, m := range msgs {
		var err error
		switch {
		case p.json && instance != "":
			err = writeJSONLine(p.out, map[string]any{"id": m.UUID, "queue": p.queue, "instance": instance})
		case p.json && pubsub.DedupKeyOf(m) != "":
			err = writeJSONLine(p.out, map[string]any{"id": m.UUID, "queue": p.queue, "duplicate": p.sent[m] != m.UUID})
		case p.json:
			err = writeJSONLine(p.out, map[string]any{"id": m.UUID, "queue": p.queue})
		case instance != "":
			err = writeFlush(p.out, []byte(m.UUID+" "+instance+"\n"))
		default:
			err = writeFlush(p.out, []byte(m.UUID+"\n"))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parsePriority(s string) (pubsub.Priority, error) {
	switch strings.ToLower(s) {
	case string(topology.PriorityNormal):
		return pubsub.PriorityNormal, nil
	case string(topology.PriorityHigh):
		return pubsub.PriorityHigh, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, usageErrorf("--priority %q: use an integer, normal or high", s)
	}
	return pubsub.Priority(n), nil
}

// ensureDeclared declares, with the settings of a topology queue, those of
// names (default: the queue itself; else instance queues of it) the
// backend does not know yet, so that they get the queue's priority
// (rollback_triggers_queue is high) rather than the defaults of an
// auto-created queue.
func ensureDeclared(ctx context.Context, b *pubsub.Backend, cfg topology.ServiceConfig, queue string, names ...string) error {
	spec, ok := cfg.Spec(queue)
	if !ok {
		return nil
	}
	if len(names) == 0 {
		names = []string{queue}
	}
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	for _, name := range names {
		if slices.ContainsFunc(infos, func(qi pubsub.QueueInfo) bool { return qi.Name == name }) {
			continue
		}
		spec.Name = name
		if err := b.DeclareQueue(ctx, spec); err != nil {
			return fmt.Errorf("declare queue %s: %w", name, err)
		}
	}
	return nil
}
