package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// publishBatch is how many messages go to the backend in one Publish call:
// backends write a call's messages as one batch.
const publishBatch = 100

func (a *app) publishCommand() *cobra.Command {
	var (
		payload  string
		count    int
		priority string
		metadata map[string]string
	)
	c := &cobra.Command{
		Use:   "publish QUEUE --payload JSON",
		Short: "Publish messages to a queue",
		Long: `publish sends --count copies of a JSON payload to a queue of the topology (or one
the backend already knows) and prints each message's id; with --json one object
per message. --priority overrides the queue's priority for these messages: an
integer (higher first) or "normal"/"high".`,
		Example: `  quantumflow publish proposals_for_consensus_queue --payload '{"id":"p1","change":"tune cache"}'
  quantumflow publish rollback_triggers_queue --payload '{"reason":"error rate"}' --priority high --json`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			queue := args[0]
			if !cmd.Flags().Changed("payload") {
				return usageErrorf("publish needs --payload JSON")
			}
			if !json.Valid([]byte(payload)) {
				return usageErrorf("--payload is not valid JSON: %s", short(payload, 80))
			}
			if count <= 0 {
				return usageErrorf("--count must be positive, got %d", count)
			}
			var prio *pubsub.Priority
			if cmd.Flags().Changed("priority") {
				p, err := parsePriority(priority)
				if err != nil {
					return err
				}
				prio = &p
			}
			cfg, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := checkQueue(ctx, b, cfg, queue); err != nil {
				return err
			}
			if err := ensureDeclared(ctx, b, cfg, queue); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for done := 0; done < count; {
				n := min(publishBatch, count-done)
				msgs := make([]*message.Message, n)
				for i := range msgs {
					m := message.NewMessage(watermill.NewUUID(), message.Payload(payload))
					for k, v := range metadata {
						m.Metadata.Set(k, v)
					}
					if prio != nil {
						pubsub.SetPriority(m, *prio)
					}
					msgs[i] = m
				}
				if err := b.Publisher().Publish(queue, msgs...); err != nil {
					return fmt.Errorf("publish to queue %s (%d of %d published): %w", queue, done, count, err)
				}
				done += n
				for _, m := range msgs {
					var err error
					if a.jsonOut {
						err = writeJSONLine(out, map[string]any{"id": m.UUID, "queue": queue})
					} else {
						err = writeFlush(out, []byte(m.UUID+"\n"))
					}
					if err != nil {
						return err
					}
				}
			}
			return nil
		}),
	}
	c.Flags().StringVar(&payload, "payload", "", "message payload, a JSON document (required)")
	c.Flags().IntVar(&count, "count", 1, "how many copies to publish")
	c.Flags().StringVar(&priority, "priority", "", `message priority: an integer, "normal" or "high" (default: the queue's)`)
	c.Flags().StringToStringVar(&metadata, "metadata", nil, "message metadata key=value (repeatable)")
	return c
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

// ensureDeclared declares a topology queue the backend does not know yet,
// so that it gets its priority (rollback_triggers_queue is high) rather
// than the defaults of an auto-created queue.
func ensureDeclared(ctx context.Context, b *pubsub.Backend, cfg topology.ServiceConfig, queue string) error {
	spec, ok := cfg.Spec(queue)
	if !ok {
		return nil
	}
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	if slices.ContainsFunc(infos, func(qi pubsub.QueueInfo) bool { return qi.Name == queue }) {
		return nil
	}
	if err := b.DeclareQueue(ctx, spec); err != nil {
		return fmt.Errorf("declare queue %s: %w", queue, err)
	}
	return nil
}
