package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// publishFlags are publish's flags, as given.
type publishFlags struct {
	payload  string
	count    int
	priority string
	to       string
	metadata map[string]string
	raw      bool
	sched    schedule
	dedupKey string
}

func (f *publishFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.payload, "payload", "", "message payload, a JSON document (required)")
	c.Flags().IntVar(&f.count, "count", 1, "how many copies to publish (at most "+strconv.Itoa(MaxPublishCount)+")")
	c.Flags().StringVar(&f.priority, "priority", "", `message priority: an integer, "normal" or "high" (default: the queue's)`)
	c.Flags().StringVar(&f.to, "to", "", `instance the messages are for, or "all" (addressed queues: required; broadcast queues: one instance's copy)`)
	c.Flags().StringToStringVar(&f.metadata, "metadata", nil, "message metadata key=value (repeatable)")
	c.Flags().BoolVar(&f.raw, "raw", false, "publish the payload as is, without checking it against the queue's contract")
	f.sched.flags(c)
	c.Flags().StringVar(&f.dedupKey, "dedup-key", "", "dedup key: within the queue's dedup_window a second publish with it stores nothing and prints the first message's id")
}

// publishArgs are publish's flags and argument, checked.
type publishArgs struct {
	queue     string
	to        string // an instance, pubsub.InstanceAll or ""
	prio      *pubsub.Priority
	deliverAt time.Time
	expiresAt time.Time
}

// check checks the flags and the QUEUE argument, without the
// configuration: every refusal is a usage error.
func (f *publishFlags) check(cmd *cobra.Command, arg string) (publishArgs, error) {
	var pa publishArgs
	if !cmd.Flags().Changed("payload") {
		return pa, usageErrorf("publish needs --payload JSON")
	}
	if err := json.Unmarshal([]byte(f.payload), new(json.RawMessage)); err != nil {
		return pa, usageErrorf("publish: queue %s: --payload is not valid JSON (%v): %s", arg, err, short(f.payload, 80))
	}
	var err error
	if pa.deliverAt, pa.expiresAt, err = f.sched.parse(time.Now()); err != nil {
		return pa, err
	}
	if err := checkDedupKey(cmd, f.dedupKey, f.count); err != nil {
		return pa, err
	}
	if cmd.Flags().Changed("priority") {
		p, err := parsePriority(f.priority)
		if err != nil {
			return pa, err
		}
		pa.prio = &p
	}
	if cmd.Flags().Changed("to") && f.to != pubsub.InstanceAll {
		if err := checkInstanceFlag("to", f.to); err != nil {
			return pa, err
		}
	}
	queue, named, err := queueArg(arg, "to", "")
	if err != nil {
		return pa, err
	}
	pa.queue, pa.to = queue, f.to
	switch {
	case named != "" && f.to != "" && named != f.to:
		return pa, usageErrorf("%s names instance %s and --to names %s: name one", arg, named, f.to)
	case named != "":
		pa.to = named
	}
	return pa, nil
}

// route checks --to against the queue's delivery mode and returns the
// mode.
func (pa *publishArgs) route(cfg topology.ServiceConfig) (topology.Delivery, error) {
	mode := deliveryOf(cfg, pa.queue)
	switch {
	case mode == topology.DeliveryWork && pa.to != "":
		return mode, usageErrorf("publish: queue %s has %s delivery (any instance takes any of its messages): it has no instance queues; drop --to", pa.queue, mode)
	case mode == topology.DeliveryAddressed && pa.to == "":
		return mode, usageErrorf("publish: queue %s has %s delivery: name the instance each message is for with --to INSTANCE (or --to all)", pa.queue, mode)
	case mode == topology.DeliveryBroadcast && pa.to == pubsub.InstanceAll:
		pa.to = ""
	}
	return mode, nil
}

// publish runs the publish command: checks, then --count messages in
// batches of publishBatch.
func (a *app) publish(ctx context.Context, cmd *cobra.Command, f *publishFlags, arg string) error {
	pa, err := f.check(cmd, arg)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	mode, err := pa.route(cfg)
	if err != nil {
		return err
	}
	if !f.raw {
		if f.metadata, err = checkContract(pa.queue, []byte(f.payload), f.metadata); err != nil {
			return err
		}
	}
	// A message the backend would refuse (--metadata of the wrong shape)
	// is refused before anything is opened: refused at Publish, it would
	// leave behind the instance queues prepare declares.
	if err := pubsub.ValidateMessage(f.message(pa, ""), 0); err != nil {
		return usageErrorf("publish to queue %s: %v; nothing published", pa.queue, err)
	}
	b, err := a.openBackend(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := checkQueue(ctx, b, cfg, pa.queue); err != nil {
		return err
	}
	if limit := b.MaxPayload(); limit > 0 && len(f.payload) > limit {
		return usageErrorf("publish to queue %s: --payload is %d bytes, over the backend's limit of %d bytes: nothing published", pa.queue, len(f.payload), limit)
	}
	p := &publication{
		b: b, out: cmd.OutOrStdout(), json: a.jsonOut, queue: pa.queue, mode: mode, to: pa.to,
		service: consumingService(cfg, pa.queue), wait: waitOf(cfg, mode), log: a.logger(),
	}
	if a.instanceSet {
		p.origin = cfg.InstanceID
	}
	if err := p.prepare(ctx, cfg); err != nil {
		return err
	}
	if prod, ok := cfg.Producer(pa.queue); ok && pa.expiresAt.IsZero() && prod.MessageTTL > 0 {
		pa.expiresAt = time.Now().Add(prod.MessageTTL)
	}
	return p.sendCopies(ctx, f.count, func() *message.Message { return f.message(pa, p.origin) })
}

// message returns a new message as the flags describe it.
func (f *publishFlags) message(pa publishArgs, origin string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), message.Payload(f.payload))
	for k, v := range f.metadata {
		m.Metadata.Set(k, v)
	}
	if pa.prio != nil {
		pubsub.SetPriority(m, *pa.prio)
	}
	if !pa.deliverAt.IsZero() {
		pubsub.SetDeliverAt(m, pa.deliverAt)
	}
	if !pa.expiresAt.IsZero() {
		pubsub.SetExpiresAt(m, pa.expiresAt)
	}
	if origin != "" {
		m.Metadata.Set(pubsub.MetadataOrigin, origin)
	}
	if f.dedupKey != "" {
		pubsub.SetDedupKey(m, f.dedupKey)
	}
	return m
}

// sendCopies sends count messages made by newMessage, publishBatch at a
// time.
func (p *publication) sendCopies(ctx context.Context, count int, newMessage func() *message.Message) error {
	for done := 0; done < count; {
		n := min(publishBatch, count-done)
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = newMessage()
		}
		if err := p.send(ctx, msgs); err != nil {
			return fmt.Errorf("publish to queue %s (%d of %d published): %w", p.queue, done, count, err)
		}
		done += n
	}
	if p.mode == topology.DeliveryBroadcast && p.to == "" && len(p.targets) == 0 {
		p.log.Warn("no instance of the consuming service is registered: the message is kept as the queue's latest, which instances get when they join",
			"queue", p.queue, "service", p.service)
	}
	return nil
}
