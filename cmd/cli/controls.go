package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
)

// pauseCommand returns `pause` (paused true) or `resume`.
func (a *app) pauseCommand(paused bool) *cobra.Command {
	use, short, long := "pause QUEUE", "Pause a queue: consumers everywhere stop taking its messages",
		`pause pauses a queue, durably and for every process on the backend: within a
second their consumers stop taking its messages (and those of its instance
queues); messages a consumer holds finish; publishing goes on, and what is
published waits. quantumflow resume QUEUE undoes it. queues and stats show
PAUSED. An unknown queue is a usage error (exit 2).`
	if !paused {
		use, short, long = "resume QUEUE", "Resume a paused queue",
			`resume resumes a paused queue: within a second every process's consumers take
its messages again. Resuming a queue that is not paused does nothing. An
unknown queue is a usage error (exit 2).`
	}
	return &cobra.Command{
		Use: use, Short: short, Long: long,
		Example: "  quantumflow " + strings.Fields(use)[0] + " proposals_for_consensus_queue",
		Args:    exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			queue := args[0]
			if err := pubsub.ValidateQueueName(queue); err != nil {
				return err
			}
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			action := "queue.pause"
			if paused {
				err = b.PauseQueue(ctx, queue)
			} else {
				action, err = "queue.resume", b.ResumeQueue(ctx, queue)
			}
			if err != nil {
				return err
			}
			a.recordAudit(ctx, b, pubsub.AuditEntry{Action: action, Queue: queue})
			if a.jsonOut {
				return writeJSONLine(cmd.OutOrStdout(), map[string]any{"queue": queue, "paused": paused})
			}
			state := "paused"
			if !paused {
				state = "resumed"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "queue %s %s\n", queue, state)
			return err
		}),
	}
}

// messageQueueFlag adds --queue, which narrows show and delete to one queue.
func messageQueueFlag(c *cobra.Command, queue *string) {
	c.Flags().StringVar(queue, "queue", "", "look only in this queue (default: every queue; broadcast copies share their message's id)")
}

// openForMessage checks show's and delete's --queue, then opens the
// backend.
func (a *app) openForMessage(ctx context.Context, queue string) (*pubsub.Backend, error) {
	if queue != "" {
		if err := pubsub.ValidateQueueName(queue); err != nil {
			return nil, err
		}
	}
	_, b, err := a.open(ctx)
	return b, err
}

func (a *app) showCommand() *cobra.Command {
	var queue string
	c := &cobra.Command{
		Use:   "show ID [--queue QUEUE]",
		Short: "Show one message: payload, metadata, state, attempts, last error",
		Long: `show prints the message with id ID: its queue, state (pending, scheduled,
in_flight or dead_letter), attempts, last error, times, priority, metadata
and payload. It looks in every queue, then among the dead letters; --queue
narrows the search to one queue. An unknown id is a usage error (exit 2).
With --json, one object.`,
		Example: `  quantumflow show 6f1c2a8e-0d7b-4d55-9f0e-1b7c3a2d9e41
  quantumflow show 6f1c2a8e-0d7b-4d55-9f0e-1b7c3a2d9e41 --queue proposals_for_consensus_queue --json`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			b, err := a.openForMessage(ctx, queue)
			if err != nil {
				return err
			}
			defer b.Close()
			m, err := b.GetMessage(ctx, queue, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				return writeJSONLine(out, map[string]any{
					"id": m.ID, "queue": m.Queue, "state": m.State, "attempts": m.Attempts, "last_error": m.LastError,
					"priority": m.Priority, "created_at": nilTime(m.CreatedAt), "available_at": nilTime(m.AvailableAt),
					"first_failure_at": nilTime(m.FirstFailureAt), "last_failure_at": nilTime(m.LastFailureAt),
					"metadata": m.Metadata, "payload": jsonPayload(m.Payload),
				})
			}
			t := newTable(out, "FIELD", "VALUE")
			t.row("id", m.ID)
			t.row("queue", m.Queue)
			t.row("state", string(m.State))
			t.row("attempts", strconv.Itoa(m.Attempts))
			t.row("last_error", dash(short(m.LastError, 200)))
			t.row("priority", strconv.Itoa(int(m.Priority)))
			t.row("created_at", fmtTime(m.CreatedAt))
			t.row("available_at", fmtTime(m.AvailableAt))
			t.row("first_failure_at", fmtTime(m.FirstFailureAt))
			t.row("last_failure_at", fmtTime(m.LastFailureAt))
			for _, k := range sortedKeys(m.Metadata) {
				t.row("metadata."+k, m.Metadata[k])
			}
			t.row("payload", string(m.Payload))
			return t.flush()
		}),
	}
	messageQueueFlag(c, &queue)
	return c
}

func (a *app) deleteCommand() *cobra.Command {
	var queue string
	c := &cobra.Command{
		Use:   "delete ID [--queue QUEUE]",
		Short: "Delete a message waiting in its queue",
		Long: `delete removes the message with id ID from its queue, whether ready or
scheduled (with --queue only from that queue; without, every waiting copy).
A message a consumer holds is refused (exit 1): try again once it is back
in its queue, or let it finish. An id that waits in no queue is a usage
error (exit 2); dead letters are removed with quantumflow dlq purge --id.`,
		Example: `  quantumflow delete 6f1c2a8e-0d7b-4d55-9f0e-1b7c3a2d9e41`,
		Args:    exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			b, err := a.openForMessage(ctx, queue)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := b.DeleteMessage(ctx, queue, args[0]); err != nil {
				return err
			}
			a.recordAudit(ctx, b, pubsub.AuditEntry{Action: "message.delete", Queue: queue, Count: 1, Detail: "id " + args[0]})
			if a.jsonOut {
				return writeJSONLine(cmd.OutOrStdout(), map[string]any{"id": args[0], "deleted": true})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return err
		}),
	}
	messageQueueFlag(c, &queue)
	return c
}

// schedule is what publish's --delay, --at and --ttl ask for.
type schedule struct {
	delay, at, ttl string
}

// flags adds the flags to publish.
func (s *schedule) flags(c *cobra.Command) {
	c.Flags().StringVar(&s.delay, "delay", "", "deliver the messages this long from now, not before (a Go duration: 30s, 5m, 2h)")
	c.Flags().StringVar(&s.at, "at", "", "deliver the messages at this time, not before (RFC 3339: 2026-12-24T18:00:00Z)")
	c.Flags().StringVar(&s.ttl, "ttl", "", "expire the messages this long from now: not taken by then, they become dead letters with the reason \"expired\" (default: the queue's message_ttl)")
}

// parse returns when the messages become deliverable (zero: at once) and
// when they expire (zero: the queue's message_ttl, if any), or a usage
// error naming the flag.
func (s *schedule) parse(now time.Time) (deliverAt, expiresAt time.Time, err error) {
	if s.delay != "" && s.at != "" {
		return deliverAt, expiresAt, usageErrorf("publish: --delay and --at both say when to deliver: give one")
	}
	if s.delay != "" {
		d, err := time.ParseDuration(s.delay)
		if err != nil || d < 0 {
			return deliverAt, expiresAt, usageErrorf("--delay %q: use a duration of at least 0, such as 30s, 5m or 2h", s.delay)
		}
		deliverAt = now.Add(d)
	}
	if s.at != "" {
		t, err := time.Parse(time.RFC3339Nano, s.at)
		if err != nil {
			return deliverAt, expiresAt, usageErrorf("--at %q: use an RFC 3339 time such as 2026-12-24T18:00:00Z", s.at)
		}
		deliverAt = t
	}
	if s.ttl != "" {
		d, err := time.ParseDuration(s.ttl)
		if err != nil || d <= 0 {
			return deliverAt, expiresAt, usageErrorf("--ttl %q: use a positive duration such as 30s, 10m or 24h", s.ttl)
		}
		expiresAt = now.Add(d)
	}
	return deliverAt, expiresAt, nil
}
