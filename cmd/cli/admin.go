package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func (a *app) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create or upgrade the backend's storage and declare the topology's six queues",
		Long: `init creates or upgrades the backend's storage (tables, streams) and declares the
six queues of the topology with their priority and retry settings. It is
idempotent and safe to run from several processes at once: the seed's
"mix QuantumFlow.init".`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			cfg, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			specs, err := topology.Init(ctx, b, cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				names := make([]string, len(specs))
				for i, s := range specs {
					names[i] = s.Name
				}
				return writeJSONLine(out, map[string]any{"initialized": true, "backend": b.String(), "queues": names})
			}
			t := newTable(out, "QUEUE", "PRIORITY", "MAX_RETRIES", "RETRY_DELAY")
			for _, s := range specs {
				t.row(s.Name, strconv.Itoa(int(s.Priority)), strconv.Itoa(s.MaxRetries), s.RetryDelay.String())
			}
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "initialized %s: %d queues declared\n", b.String(), len(specs))
			return err
		}),
	}
}

// queueRow is one line of `queues`: the queue's declaration and its stats.
type queueRow struct {
	Name               string           `json:"queue"`
	Priority           pubsub.Priority  `json:"priority"`
	MaxRetries         int              `json:"max_retries"`
	RetryDelayMS       int64            `json:"retry_delay_ms"`
	Pending            int64            `json:"pending"`
	InFlight           int64            `json:"in_flight"`
	Scheduled          int64            `json:"scheduled"`
	DeadLetters        int64            `json:"dead_letters"`
	OldestPendingAgeMS int64            `json:"oldest_pending_age_ms"`
	Counters           map[string]int64 `json:"counters,omitempty"`
}

func (a *app) queuesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "queues",
		Short: "List queues with their settings and current stats",
		Long: `queues lists the queues the backend knows, ordered by name, with their priority,
retry settings and a snapshot of their stats (pending, in flight, waiting for a
retry, dead letters, age of the oldest pending message). With --json, one
object per queue.`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			infos, err := b.ListQueues(ctx)
			if err != nil {
				return fmt.Errorf("list queues: %w", err)
			}
			out := cmd.OutOrStdout()
			t := newTable(out, "QUEUE", "PRIORITY", "PENDING", "IN_FLIGHT", "SCHEDULED", "DEAD", "OLDEST", "MAX_RETRIES", "RETRY_DELAY")
			for _, qi := range infos {
				st, err := b.Stats(ctx, qi.Name)
				if err != nil {
					return fmt.Errorf("stats of queue %s: %w", qi.Name, err)
				}
				row := queueRow{
					Name: qi.Name, Priority: qi.Priority, MaxRetries: qi.MaxRetries, RetryDelayMS: qi.RetryDelay.Milliseconds(),
					Pending: st.Pending, InFlight: st.InFlight, Scheduled: st.Scheduled, DeadLetters: st.DeadLetters,
					OldestPendingAgeMS: st.OldestPendingAge.Milliseconds(), Counters: st.Counters,
				}
				if a.jsonOut {
					if err := writeJSONLine(out, row); err != nil {
						return err
					}
					continue
				}
				t.row(row.Name, strconv.Itoa(int(row.Priority)), i64(row.Pending), i64(row.InFlight), i64(row.Scheduled),
					i64(row.DeadLetters), fmtAge(st.OldestPendingAge), strconv.Itoa(row.MaxRetries), qi.RetryDelay.String())
			}
			if a.jsonOut {
				return nil
			}
			return t.flush()
		}),
	}
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func (a *app) statsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stats QUEUE",
		Short: "Show a snapshot of one queue",
		Long: `stats shows a snapshot of one queue: pending, in flight, waiting for a retry,
dead letters, the age of the oldest pending message and the counters the
backend keeps. An unknown queue is a usage error (exit 2).`,
		Example: "  quantumflow stats proposals_for_consensus_queue --json",
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
			st, err := b.Stats(ctx, queue) // backends name the queue in errors
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				return writeJSONLine(out, map[string]any{
					"queue": st.Queue, "pending": st.Pending, "in_flight": st.InFlight, "scheduled": st.Scheduled,
					"dead_letters": st.DeadLetters, "oldest_pending_age_ms": st.OldestPendingAge.Milliseconds(),
					"counters": st.Counters,
				})
			}
			t := newTable(out, "FIELD", "VALUE")
			t.row("queue", st.Queue)
			t.row("pending", i64(st.Pending))
			t.row("in_flight", i64(st.InFlight))
			t.row("scheduled", i64(st.Scheduled))
			t.row("dead_letters", i64(st.DeadLetters))
			t.row("oldest_pending_age", fmtAge(st.OldestPendingAge))
			for _, k := range sortedKeys(st.Counters) {
				t.row(k, i64(st.Counters[k]))
			}
			return t.flush()
		}),
	}
}

func (a *app) pendingCommand() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "pending QUEUE",
		Short: "List messages waiting in a queue, in delivery order",
		Long: `pending lists up to --limit messages of a queue in delivery order (priority
first, then oldest), including those waiting for a retry. With --json, one
object per message.`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			queue := args[0]
			if limit <= 0 {
				return usageErrorf("--limit must be positive, got %d", limit)
			}
			if err := pubsub.ValidateQueueName(queue); err != nil {
				return err
			}
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			msgs, err := b.ListPending(ctx, queue, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				for _, m := range msgs {
					if err := writeJSONLine(out, map[string]any{
						"id": m.ID, "queue": m.Queue, "created_at": m.CreatedAt, "attempts": m.Attempts,
						"priority": m.Priority, "available_at": nilTime(m.AvailableAt), "payload": jsonPayload(m.Payload),
						"metadata": m.Metadata,
					}); err != nil {
						return err
					}
				}
				return nil
			}
			t := newTable(out, "ID", "CREATED", "ATTEMPTS", "PRIORITY", "AVAILABLE_AT", "PAYLOAD")
			for _, m := range msgs {
				t.row(m.ID, fmtTime(m.CreatedAt), strconv.Itoa(m.Attempts), strconv.Itoa(int(m.Priority)), fmtTime(m.AvailableAt), short(string(m.Payload), 60))
			}
			return t.flush()
		}),
	}
	c.Flags().IntVar(&limit, "limit", 100, "how many messages to list at most")
	return c
}
