package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
)

func (a *app) dlqCommand() *cobra.Command {
	return groupCommand("dlq", "Work the dead-letter queue: list, retry, purge",
		a.dlqListCommand(), a.dlqRetryCommand(), a.dlqPurgeCommand())
}

// dlqScope is which queues' dead letters a dlq command works on: --queue
// (QUEUE or QUEUE@INSTANCE) and the --instance filter.
type dlqScope struct {
	queue    string // the queue without instance; "" = every queue
	instance string // "" = every instance (and none)
}

// scope reads --queue and --instance.
func (a *app) dlqScope(queue string) (dlqScope, error) {
	if queue == "" {
		inst := a.instanceFlag()
		if inst != "" {
			if err := checkInstanceFlag("instance", inst); err != nil {
				return dlqScope{}, err
			}
		}
		return dlqScope{instance: inst}, nil
	}
	q, inst, err := queueArg(queue, "instance", a.instanceFlag())
	if err != nil {
		return dlqScope{}, err
	}
	return dlqScope{queue: q, instance: inst}, nil
}

// queues returns the queue names whose dead letters the scope selects:
// nil for every queue. A dead letter of an instance's copy is filed under
// the instance's queue, QUEUE@INSTANCE, so --queue QUEUE selects the queue
// and its instance queues, and --instance alone every queue of that
// instance.
func (s dlqScope) queues(ctx context.Context, b *pubsub.Backend) ([]string, error) {
	switch {
	case s.queue == "" && s.instance == "":
		return nil, nil
	case s.queue != "" && s.instance != "":
		return []string{pubsub.InstanceQueue(s.queue, s.instance)}, nil
	}
	infos, err := b.ListQueues(ctx)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	var names []string
	if s.queue != "" {
		names = append(names, s.queue)
	}
	for _, qi := range infos {
		q, inst := splitName(qi.Name)
		if inst != "" && (s.queue == "" || q == s.queue) && (s.instance == "" || inst == s.instance) {
			names = append(names, qi.Name)
		}
	}
	slices.SortFunc(names, byQueueThenInstance)
	return names, nil
}

// describe names the scope for output.
func (s dlqScope) describe() string {
	switch {
	case s.queue != "" && s.instance != "":
		return "queue " + pubsub.InstanceQueue(s.queue, s.instance)
	case s.queue != "":
		return "queue " + s.queue
	case s.instance != "":
		return "instance " + s.instance
	}
	return "all queues"
}

func (a *app) dlqListCommand() *cobra.Command {
	var queue string
	var limit int
	c := &cobra.Command{
		Use:   "list [--queue QUEUE[@INSTANCE]] [--instance ID]",
		Short: "List dead letters, newest first",
		Long: `list shows up to --limit (at most ` + strconv.Itoa(MaxListLimit) + `) dead letters, newest first: id,
original queue, the instance it was for (addressed and broadcast queues),
attempts, last error, handler, service, when it last failed and the payload.
With --json, one object per dead letter.

--queue QUEUE selects the queue's dead letters and those of its instance
queues; --queue QUEUE@INSTANCE or --queue QUEUE --instance ID one instance's;
--instance ID alone every queue's dead letters for that instance.`,
		Example: `  quantumflow dlq list --queue proposals_for_consensus_queue
  quantumflow dlq list --queue consensus_results_queue@singularity-2 --json
  quantumflow dlq list --instance singularity-2`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			scope, err := a.dlqScope(queue)
			if err != nil {
				return err
			}
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			names, err := scope.queues(ctx, b)
			if err != nil {
				return err
			}
			var dls []pubsub.DeadLetter
			if names == nil && scope == (dlqScope{}) {
				names = []string{""}
			}
			for _, name := range names {
				got, err := b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: name, Limit: limit})
				if err != nil {
					return fmt.Errorf("list dead letters: %w", err)
				}
				dls = append(dls, got...)
			}
			if len(names) > 1 {
				slices.SortStableFunc(dls, func(x, y pubsub.DeadLetter) int { return cmp.Compare(y.CreatedAt.UnixNano(), x.CreatedAt.UnixNano()) })
				dls = dls[:min(len(dls), limit)]
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				for _, d := range dls {
					q, inst := splitName(d.Queue)
					row := map[string]any{
						"id": d.ID, "queue": q, "attempts": d.Attempts, "error": d.Error, "handler": d.Handler,
						"service": d.Service, "first_failure_at": nilTime(d.FirstFailureAt), "last_failure_at": nilTime(d.LastFailureAt),
						"created_at": d.CreatedAt, "payload": jsonPayload(d.Payload), "metadata": d.Metadata,
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
			t := newTable(out, "ID", "QUEUE", "INSTANCE", "ATTEMPTS", "ERROR", "HANDLER", "SERVICE", "LAST_FAILURE", "PAYLOAD")
			for _, d := range dls {
				q, inst := splitName(d.Queue)
				t.row(d.ID, q, dash(inst), strconv.Itoa(d.Attempts), short(d.Error, 50), dash(d.Handler), dash(d.Service), fmtTime(d.LastFailureAt), short(string(d.Payload), 40))
			}
			return t.flush()
		}),
	}
	c.Flags().StringVar(&queue, "queue", "", "only dead letters from this queue (and its instance queues), or QUEUE@INSTANCE")
	c.Flags().IntVar(&limit, "limit", 100, "how many dead letters to list at most (at most "+strconv.Itoa(MaxListLimit)+")")
	return c
}

// dlqSelector holds the flags that choose dead letters to retry or purge.
type dlqSelector struct {
	queue string
	ids   []string
	all   bool
}

func (s *dlqSelector) flags(c *cobra.Command, verb string) {
	c.Flags().StringVar(&s.queue, "queue", "", verb+" the dead letters from this queue and its instance queues, or from QUEUE@INSTANCE")
	c.Flags().StringSliceVar(&s.ids, "id", nil, verb+" the dead letters with these ids (repeat or comma-separate; at most "+strconv.Itoa(MaxIDs)+")")
	c.Flags().BoolVar(&s.all, "all", false, verb+" every dead letter of every queue")
}

// selection is what a retry or purge works on: the ids (if any) within the
// scope.
type selection struct {
	scope dlqScope
	ids   []string
}

// query turns the flags into a selection. A bare command is refused:
// retrying or purging everything must be asked for with --all; --instance
// narrows --queue or --id, or alone selects one instance's dead letters.
func (a *app) dlqSelect(s *dlqSelector, verb string) (selection, error) {
	scope, err := a.dlqScope(s.queue)
	if err != nil {
		return selection{}, err
	}
	switch {
	case s.all && (s.queue != "" || len(s.ids) > 0 || scope.instance != ""):
		return selection{}, usageErrorf("dlq %s: --all cannot be combined with --queue, --id or --instance", verb)
	case !s.all && scope == (dlqScope{}) && len(s.ids) == 0:
		return selection{}, usageErrorf("dlq %s needs a selector: --queue QUEUE[@INSTANCE], --instance ID, --id ID... or --all", verb)
	}
	for _, id := range s.ids {
		if err := pubsub.ValidateMessageID(id); err != nil {
			return selection{}, usageErrorf("dlq %s: --id: %v", verb, err)
		}
	}
	return selection{scope: scope, ids: s.ids}, nil
}

func (a *app) dlqRetryCommand() *cobra.Command {
	var sel dlqSelector
	c := &cobra.Command{
		Use:   "retry (--queue QUEUE[@INSTANCE] | --instance ID | --id ID... | --all)",
		Short: "Move dead letters back onto their queues with attempts reset",
		Long: `retry moves the selected dead letters back onto their original queues with their
attempts reset, and prints how many moved. A dead letter of an instance's
copy goes back to that instance's queue. A selector is required: --queue
(QUEUE: the queue and its instance queues; QUEUE@INSTANCE: one instance's),
--instance (alone: every queue of that instance; with --queue or --id: only
that instance's), --id (several allowed) or --all.`,
		Example: `  quantumflow dlq retry --queue proposals_for_consensus_queue
  quantumflow dlq retry --queue rollback_triggers_queue --instance singularity-2
  quantumflow dlq retry --id 0b6c... --id 7f1e...
  quantumflow dlq retry --all`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			s, err := a.dlqSelect(&sel, "retry")
			if err != nil {
				return err
			}
			return a.dlqApply(ctx, cmd, "retried", s, func(b *pubsub.Backend, q pubsub.DeadLetterQuery) (int, error) {
				return b.RetryDeadLetters(ctx, q)
			})
		}),
	}
	sel.flags(c, "retry")
	return c
}

func (a *app) dlqPurgeCommand() *cobra.Command {
	var sel dlqSelector
	c := &cobra.Command{
		Use:   "purge (--queue QUEUE[@INSTANCE] | --instance ID | --id ID... | --all)",
		Short: "Delete dead letters for good",
		Long: `purge deletes the selected dead letters and prints how many were deleted. A
selector is required: --queue (QUEUE: the queue and its instance queues;
QUEUE@INSTANCE: one instance's), --instance (alone: every queue of that
instance; with --queue or --id: only that instance's), --id (several allowed)
or --all.`,
		Example: `  quantumflow dlq purge --queue metrics_to_guardian_queue
  quantumflow dlq purge --instance singularity-3
  quantumflow dlq purge --all`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			s, err := a.dlqSelect(&sel, "purge")
			if err != nil {
				return err
			}
			return a.dlqApply(ctx, cmd, "purged", s, func(b *pubsub.Backend, q pubsub.DeadLetterQuery) (int, error) {
				return b.PurgeDeadLetters(ctx, q)
			})
		}),
	}
	sel.flags(c, "purge")
	return c
}

// auditEntry is the audit log's entry of a retry or purge of s that
// changed n dead letters, and failed with err if not nil.
func (s selection) auditEntry(verb string, n int, err error) pubsub.AuditEntry {
	e := pubsub.AuditEntry{Action: map[string]string{"retried": "dlq.retry", "purged": "dlq.purge"}[verb], Queue: s.scope.queue, Count: n}
	var detail []string
	if s.scope.instance != "" {
		if s.scope.queue != "" {
			e.Queue = pubsub.InstanceQueue(s.scope.queue, s.scope.instance)
		} else {
			detail = append(detail, "instance="+s.scope.instance)
		}
	}
	if len(s.ids) > 0 {
		detail = append(detail, "ids="+strconv.Itoa(len(s.ids)))
	}
	if s.scope == (dlqScope{}) && len(s.ids) == 0 {
		detail = append(detail, "all")
	}
	e.Detail = strings.Join(detail, " ")
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

func (a *app) dlqApply(ctx context.Context, cmd *cobra.Command, verb string, s selection, do func(*pubsub.Backend, pubsub.DeadLetterQuery) (int, error)) error {
	_, b, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	names, err := s.scope.queues(ctx, b)
	if err != nil {
		return err
	}
	if names == nil && s.scope != (dlqScope{}) {
		names = []string{} // an instance with no queues: nothing to do
	} else if names == nil {
		names = []string{""}
	}
	n := 0
	for _, name := range names {
		m, err := do(b, pubsub.DeadLetterQuery{Queue: name, IDs: s.ids})
		n += m
		if err != nil {
			err = fmt.Errorf("dead letters %s (%d so far): %w", verb, n, err)
			a.recordAudit(ctx, b, s.auditEntry(verb, n, err))
			return err
		}
	}
	a.recordAudit(ctx, b, s.auditEntry(verb, n, nil))
	out := cmd.OutOrStdout()
	if a.jsonOut {
		row := map[string]any{verb: n, "queue": s.scope.queue, "ids": s.ids}
		if s.scope.instance != "" {
			row["instance"] = s.scope.instance
		}
		return writeJSONLine(out, row)
	}
	scope := s.scope.describe()
	if len(s.ids) > 0 {
		scope = strconv.Itoa(len(s.ids)) + " id(s), " + scope
	}
	_, err = fmt.Fprintf(out, "%s %d dead letter(s) (%s)\n", verb, n, scope)
	return err
}
