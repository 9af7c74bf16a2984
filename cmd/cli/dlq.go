package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
)

func (a *app) dlqCommand() *cobra.Command {
	return groupCommand("dlq", "Work the dead-letter queue: list, retry, purge",
		a.dlqListCommand(), a.dlqRetryCommand(), a.dlqPurgeCommand())
}

func (a *app) dlqListCommand() *cobra.Command {
	var queue string
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, newest first",
		Long: `list shows dead letters, newest first: id, original queue, attempts, last error,
handler, service, when it last failed and the payload. With --json, one object
per dead letter.`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return usageErrorf("--limit must be positive, got %d", limit)
			}
			q := pubsub.DeadLetterQuery{Queue: queue, Limit: limit}
			if err := checkDLQQuery(q); err != nil {
				return err
			}
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			dls, err := b.ListDeadLetters(ctx, q)
			if err != nil {
				return fmt.Errorf("list dead letters: %w", err)
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				for _, d := range dls {
					if err := writeJSONLine(out, map[string]any{
						"id": d.ID, "queue": d.Queue, "attempts": d.Attempts, "error": d.Error, "handler": d.Handler,
						"service": d.Service, "first_failure_at": nilTime(d.FirstFailureAt), "last_failure_at": nilTime(d.LastFailureAt),
						"created_at": d.CreatedAt, "payload": jsonPayload(d.Payload), "metadata": d.Metadata,
					}); err != nil {
						return err
					}
				}
				return nil
			}
			t := newTable(out, "ID", "QUEUE", "ATTEMPTS", "ERROR", "HANDLER", "SERVICE", "LAST_FAILURE", "PAYLOAD")
			for _, d := range dls {
				t.row(d.ID, d.Queue, strconv.Itoa(d.Attempts), short(d.Error, 50), d.Handler, d.Service, fmtTime(d.LastFailureAt), short(string(d.Payload), 40))
			}
			return t.flush()
		}),
	}
	c.Flags().StringVar(&queue, "queue", "", "only dead letters from this queue")
	c.Flags().IntVar(&limit, "limit", 100, "how many dead letters to list at most")
	return c
}

// dlqSelector holds the flags that choose dead letters to retry or purge.
type dlqSelector struct {
	queue string
	ids   []string
	all   bool
}

func (s *dlqSelector) flags(c *cobra.Command, verb string) {
	c.Flags().StringVar(&s.queue, "queue", "", verb+" the dead letters from this queue")
	c.Flags().StringSliceVar(&s.ids, "id", nil, verb+" the dead letters with these ids (repeat or comma-separate)")
	c.Flags().BoolVar(&s.all, "all", false, verb+" every dead letter of every queue")
}

// query turns the flags into a query. A bare command is refused: retrying or
// purging everything must be asked for with --all.
func (s *dlqSelector) query(verb string) (pubsub.DeadLetterQuery, error) {
	q := pubsub.DeadLetterQuery{Queue: s.queue, IDs: s.ids}
	switch {
	case s.all && (s.queue != "" || len(s.ids) > 0):
		return q, usageErrorf("dlq %s: --all cannot be combined with --queue or --id", verb)
	case !s.all && s.queue == "" && len(s.ids) == 0:
		return q, usageErrorf("dlq %s needs a selector: --queue QUEUE, --id ID... or --all", verb)
	}
	for _, id := range s.ids {
		if id == "" {
			return q, usageErrorf("dlq %s: empty --id", verb)
		}
	}
	return q, checkDLQQuery(q)
}

func checkDLQQuery(q pubsub.DeadLetterQuery) error {
	if q.Queue != "" {
		return pubsub.ValidateQueueName(q.Queue)
	}
	return nil
}

func (a *app) dlqRetryCommand() *cobra.Command {
	var sel dlqSelector
	c := &cobra.Command{
		Use:   "retry",
		Short: "Move dead letters back onto their queues with attempts reset",
		Long: `retry moves the selected dead letters back onto their original queues with their
attempts reset, and prints how many moved. A selector is required: --queue,
--id (several allowed) or --all.`,
		Example: `  quantumflow dlq retry --queue proposals_for_consensus_queue
  quantumflow dlq retry --id 0b6c... --id 7f1e...
  quantumflow dlq retry --all`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			q, err := sel.query("retry")
			if err != nil {
				return err
			}
			return a.dlqApply(ctx, cmd, "retried", q, func(b *pubsub.Backend) (int, error) { return b.RetryDeadLetters(ctx, q) })
		}),
	}
	sel.flags(c, "retry")
	return c
}

func (a *app) dlqPurgeCommand() *cobra.Command {
	var sel dlqSelector
	c := &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good",
		Long: `purge deletes the selected dead letters and prints how many were deleted. A
selector is required: --queue, --id (several allowed) or --all.`,
		Example: `  quantumflow dlq purge --queue metrics_to_guardian_queue
  quantumflow dlq purge --all`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			q, err := sel.query("purge")
			if err != nil {
				return err
			}
			return a.dlqApply(ctx, cmd, "purged", q, func(b *pubsub.Backend) (int, error) { return b.PurgeDeadLetters(ctx, q) })
		}),
	}
	sel.flags(c, "purge")
	return c
}

func (a *app) dlqApply(ctx context.Context, cmd *cobra.Command, verb string, q pubsub.DeadLetterQuery, do func(*pubsub.Backend) (int, error)) error {
	_, b, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	n, err := do(b)
	if err != nil {
		return fmt.Errorf("dead letters %s: %w", verb, err)
	}
	out := cmd.OutOrStdout()
	if a.jsonOut {
		return writeJSONLine(out, map[string]any{verb: n, "queue": q.Queue, "ids": q.IDs})
	}
	scope := "all queues"
	if q.Queue != "" {
		scope = "queue " + q.Queue
	}
	if len(q.IDs) > 0 {
		scope = strconv.Itoa(len(q.IDs)) + " id(s)"
	}
	_, err = fmt.Fprintf(out, "%s %d dead letter(s) (%s)\n", verb, n, scope)
	return err
}
