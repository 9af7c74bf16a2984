package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
)

func (a *app) auditCommand() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log: every retry, purge and other mutation, who made it and how many messages it changed",
		Long: `audit lists the last --limit (at most ` + strconv.Itoa(pubsub.MaxAuditLimit) + `) entries of the backend's audit log,
newest first: when, the role (admin: the HTTP API with the admin token; cli:
this tool), the remote address (HTTP) or user@host (cli), the action
(dlq.retry, dlq.purge, ...), the queue, how many messages changed, what else
was selected (ids, an error filter) and the error that stopped it part way.
With --json, one object per entry.`,
		Example: `  quantumflow audit
  quantumflow audit --limit 20 --json`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			_, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			es, err := b.Audit(ctx, limit)
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			out := cmd.OutOrStdout()
			if a.jsonOut {
				for _, e := range es {
					if err := writeJSONLine(out, e); err != nil {
						return err
					}
				}
				return nil
			}
			t := newTable(out, "AT", "ROLE", "REMOTE", "ACTION", "QUEUE", "COUNT", "DETAIL", "ERROR")
			for _, e := range es {
				t.row(fmtTime(e.At), e.Role, dash(e.Remote), e.Action, dash(e.Queue), strconv.Itoa(e.Count), dash(short(e.Detail, 40)), dash(short(e.Error, 50)))
			}
			return t.flush()
		}),
	}
	c.Flags().IntVar(&limit, "limit", pubsub.DefaultAuditLimit, "how many entries to list at most (at most "+strconv.Itoa(pubsub.MaxAuditLimit)+")")
	return c
}

// recordAudit adds a mutation of the tool to the backend's audit log, as
// role "cli" from user@host. The mutation has happened: a failure to
// record it is reported on stderr, and does not fail the command.
func (a *app) recordAudit(ctx context.Context, b *pubsub.Backend, e pubsub.AuditEntry) {
	e.Role = pubsub.AuditRoleCLI
	e.Remote = cliRemote()
	if e.Error != "" {
		e.Error = a.scrub(errors.New(e.Error))
	}
	err := b.RecordAudit(context.WithoutCancel(ctx), e)
	if err != nil && !errors.Is(err, pubsub.ErrUnsupported) {
		a.logger().Error("audit entry not stored", "error", a.scrub(err), "action", e.Action, "queue", e.Queue, "count", e.Count)
	}
}

// cliRemote names who ran the tool: user@host.
func cliRemote() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return name + "@" + host
}
