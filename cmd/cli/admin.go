package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
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
// An instance's queue (QUEUE@INSTANCE) is a row of its own, under its
// queue, with the instance named.
type queueRow struct {
	Name               string           `json:"queue"`
	Instance           string           `json:"instance,omitempty"`
	Priority           pubsub.Priority  `json:"priority"`
	MaxRetries         int              `json:"max_retries"`
	RetryDelayMS       int64            `json:"retry_delay_ms"`
	DedupWindowMS      int64            `json:"dedup_window_ms"`
	Pending            int64            `json:"pending"`
	InFlight           int64            `json:"in_flight"`
	Scheduled          int64            `json:"scheduled"`
	DeadLetters        int64            `json:"dead_letters"`
	OldestPendingAgeMS int64            `json:"oldest_pending_age_ms"`
	Paused             bool             `json:"paused"`
	Counters           map[string]int64 `json:"counters,omitempty"`
}

func (a *app) queuesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "queues",
		Short: "List queues with their settings and current stats",
		Long: `queues lists the queues the backend knows, ordered by name, with their priority,
retry settings, dedup window and a snapshot of their stats (pending, in flight, waiting for a
retry, dead letters, age of the oldest pending message). The instance queues
of addressed and broadcast queues (QUEUE@INSTANCE) follow their queue, with
the INSTANCE column set. PAUSED says whether the queue is paused (quantumflow
pause). With --json, one object per queue: queue, instance (for an instance
queue), the settings, the stats and paused.`,
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
			slices.SortFunc(infos, func(x, y pubsub.QueueInfo) int { return byQueueThenInstance(x.Name, y.Name) })
			out := cmd.OutOrStdout()
			t := newTable(out, "QUEUE", "INSTANCE", "PRIORITY", "PENDING", "IN_FLIGHT", "SCHEDULED", "DEAD", "OLDEST", "MAX_RETRIES", "RETRY_DELAY", "DEDUP_WINDOW", "PAUSED")
			for _, qi := range infos {
				st, err := b.Stats(ctx, qi.Name)
				if err != nil {
					return fmt.Errorf("stats of queue %s: %w", qi.Name, err)
				}
				queue, instance := splitName(qi.Name)
				row := queueRow{
					Name: queue, Instance: instance, Priority: qi.Priority, MaxRetries: qi.MaxRetries, RetryDelayMS: qi.RetryDelay.Milliseconds(),
					DedupWindowMS: qi.DedupWindow.Milliseconds(),
					Pending:       st.Pending, InFlight: st.InFlight, Scheduled: st.Scheduled, DeadLetters: st.DeadLetters,
					OldestPendingAgeMS: st.OldestPendingAge.Milliseconds(), Paused: st.Paused, Counters: st.Counters,
				}
				if a.jsonOut {
					if err := writeJSONLine(out, row); err != nil {
						return err
					}
					continue
				}
				t.row(row.Name, dash(instance), strconv.Itoa(int(row.Priority)), i64(row.Pending), i64(row.InFlight), i64(row.Scheduled),
					i64(row.DeadLetters), fmtAge(st.OldestPendingAge), strconv.Itoa(row.MaxRetries), qi.RetryDelay.String(), qi.DedupWindow.String(), yesNo(st.Paused))
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
		Use:   "stats QUEUE [--instance ID]",
		Short: "Show a snapshot of one queue",
		Long: `stats shows a snapshot of one queue: pending, in flight, scheduled (waiting
for a retry, or published delayed or scheduled), dead letters, the age of the
oldest pending message, whether it is paused and the counters the backend
keeps. An unknown queue is a usage error (exit 2).

On a queue with addressed or broadcast delivery, --instance ID (or QUEUE@ID)
shows that instance's queue; without it, a row per instance queue and a
total (with --json, one object per instance and a last one with
"total": true). --instance on a work queue is a usage error.`,
		Example: `  quantumflow stats proposals_for_consensus_queue --json
  quantumflow stats consensus_results_queue
  quantumflow stats consensus_results_queue --instance singularity-2`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			queue, instance, cfg, mode, err := a.queueTarget("stats", args[0])
			if err != nil {
				return err
			}
			b, err := a.openBackend(ctx, cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			out := cmd.OutOrStdout()
			if instance == "" && mode != topology.DeliveryWork {
				return a.instanceStats(ctx, out, b, queue, mode)
			}
			name := queue
			if instance != "" {
				name = pubsub.InstanceQueue(queue, instance)
			}
			st, err := b.Stats(ctx, name) // backends name the queue in errors
			if err != nil {
				return err
			}
			if a.jsonOut {
				return writeJSONLine(out, statsRow(queue, instance, st))
			}
			t := newTable(out, "FIELD", "VALUE")
			t.row("queue", queue)
			if instance != "" {
				t.row("instance", instance)
			}
			t.row("pending", i64(st.Pending))
			t.row("in_flight", i64(st.InFlight))
			t.row("scheduled", i64(st.Scheduled))
			t.row("dead_letters", i64(st.DeadLetters))
			t.row("oldest_pending_age", fmtAge(st.OldestPendingAge))
			t.row("paused", yesNo(st.Paused))
			for _, k := range sortedKeys(st.Counters) {
				t.row(k, i64(st.Counters[k]))
			}
			return t.flush()
		}),
	}
}

// statsRow is one queue's stats as a JSON object.
func statsRow(queue, instance string, st pubsub.QueueStats) map[string]any {
	row := map[string]any{
		"queue": queue, "pending": st.Pending, "in_flight": st.InFlight, "scheduled": st.Scheduled,
		"dead_letters": st.DeadLetters, "oldest_pending_age_ms": st.OldestPendingAge.Milliseconds(),
		"paused": st.Paused, "counters": st.Counters,
	}
	if instance != "" {
		row["instance"] = instance
	}
	return row
}

// instanceStats prints the stats of every instance queue of queue, and
// their total. What waits in the queue itself (published without an
// instance, which routers do not do) is a row without an instance, shown
// only when there is any.
func (a *app) instanceStats(ctx context.Context, out io.Writer, b *pubsub.Backend, queue string, mode topology.Delivery) error {
	names, err := instanceQueues(ctx, b, queue)
	if err != nil {
		return err
	}
	var total pubsub.QueueStats
	type row struct {
		instance string
		st       pubsub.QueueStats
	}
	var rows []row
	base, err := b.Stats(ctx, queue)
	switch {
	case isNotFound(err) && len(names) > 0:
	case err != nil:
		return err
	case base.Pending+base.InFlight+base.Scheduled+base.DeadLetters > 0:
		rows = append(rows, row{"", base})
	}
	for _, name := range names {
		st, err := b.Stats(ctx, name)
		if err != nil {
			return err
		}
		_, inst := splitName(name)
		rows = append(rows, row{inst, st})
	}
	for _, r := range rows {
		total.Pending += r.st.Pending
		total.InFlight += r.st.InFlight
		total.Scheduled += r.st.Scheduled
		total.DeadLetters += r.st.DeadLetters
		total.OldestPendingAge = max(total.OldestPendingAge, r.st.OldestPendingAge)
	}
	if a.jsonOut {
		for _, r := range rows {
			if err := writeJSONLine(out, statsRow(queue, r.instance, r.st)); err != nil {
				return err
			}
		}
		return writeJSONLine(out, map[string]any{
			"queue": queue, "total": true, "delivery": mode, "instances": len(names), "pending": total.Pending, "in_flight": total.InFlight,
			"scheduled": total.Scheduled, "dead_letters": total.DeadLetters, "oldest_pending_age_ms": total.OldestPendingAge.Milliseconds(),
		})
	}
	if _, err := fmt.Fprintf(out, "queue %s: %s delivery, %d instance queue(s)\n", queue, mode, len(names)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	t := newTable(out, "INSTANCE", "PENDING", "IN_FLIGHT", "SCHEDULED", "DEAD", "OLDEST")
	for _, r := range rows {
		inst := r.instance
		if inst == "" {
			inst = "(none)"
		}
		t.row(inst, i64(r.st.Pending), i64(r.st.InFlight), i64(r.st.Scheduled), i64(r.st.DeadLetters), fmtAge(r.st.OldestPendingAge))
	}
	t.row("total", i64(total.Pending), i64(total.InFlight), i64(total.Scheduled), i64(total.DeadLetters), fmtAge(total.OldestPendingAge))
	return t.flush()
}

func (a *app) pendingCommand() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "pending QUEUE [--instance ID]",
		Short: "List messages waiting in a queue, in delivery order",
		Long: `pending lists up to --limit (at most ` + strconv.Itoa(MaxListLimit) + `) messages of a queue in delivery order
(priority first, then oldest), then those scheduled (waiting for a retry, or
published with --delay or --at) with AVAILABLE_AT, when they are due. With
--json, one object per message: id, queue, instance (on addressed and
broadcast queues), created_at, attempts, priority, available_at, payload,
metadata.

On a queue with addressed or broadcast delivery, --instance ID (or QUEUE@ID)
lists that instance's queue; without it, each instance queue in turn, by
instance, up to --limit in all. --instance on a work queue is a usage error.`,
		Example: `  quantumflow pending proposals_for_consensus_queue --limit 10
  quantumflow pending rollback_triggers_queue --instance singularity-2 --json`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			queue, instance, cfg, mode, err := a.queueTarget("pending", args[0])
			if err != nil {
				return err
			}
			b, err := a.openBackend(ctx, cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			names := []string{queue}
			switch {
			case instance != "":
				names = []string{pubsub.InstanceQueue(queue, instance)}
			case mode != topology.DeliveryWork:
				inst, err := instanceQueues(ctx, b, queue)
				if err != nil {
					return err
				}
				names = append(names, inst...)
			}
			var msgs []pubsub.PendingMessage
			for i, name := range names {
				if len(msgs) >= limit {
					break
				}
				ms, err := b.ListPending(ctx, name, limit-len(msgs))
				if isNotFound(err) && len(names) > 1 && i == 0 {
					continue // the queue itself is not needed to list its instances'
				}
				if err != nil {
					return err
				}
				msgs = append(msgs, ms...)
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				for _, m := range msgs {
					q, inst := splitName(m.Queue)
					row := map[string]any{
						"id": m.ID, "queue": q, "created_at": m.CreatedAt, "attempts": m.Attempts,
						"priority": m.Priority, "available_at": nilTime(m.AvailableAt), "payload": jsonPayload(m.Payload),
						"metadata": m.Metadata,
					}
					if inst != "" {
						row["instance"] = inst
					}
					if err := writeJSONLine(out, row); err != nil {
						return err
					}
				}
				return nil
			}
			if mode == topology.DeliveryWork {
				t := newTable(out, "ID", "CREATED", "ATTEMPTS", "PRIORITY", "AVAILABLE_AT", "PAYLOAD")
				for _, m := range msgs {
					t.row(m.ID, fmtTime(m.CreatedAt), strconv.Itoa(m.Attempts), strconv.Itoa(int(m.Priority)), fmtTime(m.AvailableAt), short(string(m.Payload), 60))
				}
				return t.flush()
			}
			t := newTable(out, "ID", "INSTANCE", "CREATED", "ATTEMPTS", "PRIORITY", "AVAILABLE_AT", "PAYLOAD")
			for _, m := range msgs {
				_, inst := splitName(m.Queue)
				t.row(m.ID, dash(inst), fmtTime(m.CreatedAt), strconv.Itoa(m.Attempts), strconv.Itoa(int(m.Priority)), fmtTime(m.AvailableAt), short(string(m.Payload), 60))
			}
			return t.flush()
		}),
	}
	c.Flags().IntVar(&limit, "limit", 100, "how many messages to list at most (at most "+strconv.Itoa(MaxListLimit)+")")
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
