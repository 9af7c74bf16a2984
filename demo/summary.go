package demo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/quantumflow/quantumflow/telemetry"
)

// WriteText writes the summary for people: a heading, a table with a row
// per queue and the total (PENDING counts pending and in-flight messages),
// the outcome of the consensus and rollback work, and whether anything was
// lost.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "QuantumFlow demo on %s: centralcloud + %d singularity instances, %d rounds, %.1fs\n\n",
		s.Backend, s.Instances, s.Rounds, float64(s.DurationMS)/1000)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPUBLISHED\tCONSUMED\tRETRIED\tDEAD-LETTERED\tPENDING\tLOST")
	for _, q := range append(s.Queues, s.Total) {
		fmt.Fprintln(tw, strings.Join([]string{q.Queue, strconv.Itoa(q.Published), strconv.Itoa(q.Consumed), strconv.Itoa(q.Retried),
			strconv.Itoa(q.DeadLettered), strconv.Itoa(q.Pending + q.InFlight), strconv.Itoa(q.Lost)}, "\t"))
	}
	_ = tw.Flush() // a strings.Builder does not fail
	if len(s.Routing) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tRESULTS\tRESULTS FOR OTHERS\tROLLBACKS\tROLLBACKS FOR OTHERS\tPROFILES")
		for _, r := range s.Routing {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d of %d\n", r.Instance, r.Results, r.ResultsForOthers, r.Rollbacks, r.RollbacksForOthers,
				r.ProfilesReceived, r.ProfilesPublished)
		}
		_ = tw.Flush()
		if s.Misrouted > 0 {
			fmt.Fprintf(&b, "MISROUTED: %d message(s) reached an instance they were not for\n", s.Misrouted)
		}
	}
	e := s.Events
	fmt.Fprintf(&b, "\nconsensus: %d approved, %d rejected; rollbacks completed: %d; safety profile updates: %d\n",
		e[telemetry.NameConsensusApproved], e[telemetry.NameConsensusRejected], e[telemetry.NameRollbackCompleted], e[telemetry.NameProfileUpdated])
	if s.Total.Redelivered > 0 || s.Total.Recovered > 0 {
		fmt.Fprintf(&b, "redelivered after success: %d; recovered from an earlier run: %d\n", s.Total.Redelivered, s.Total.Recovered)
	}
	switch {
	case s.Lost > 0:
		fmt.Fprintf(&b, "LOST: %d message(s)\n", s.Lost)
	case s.Settled:
		fmt.Fprintf(&b, "lost: 0 — every message was consumed or dead-lettered\n")
	default:
		fmt.Fprintf(&b, "lost: 0 — %d message(s) still in the backend", s.Total.Pending+s.Total.InFlight)
		if s.Total.InFlight > 0 {
			fmt.Fprintf(&b, " (%d of them held as in flight: they come back when their lease runs out)", s.Total.InFlight)
		}
		b.WriteString("\n")
	}
	switch {
	case s.Total.DeadLettered == 0 || !s.Durable:
	case !s.Embedded:
		fmt.Fprintf(&b, "inspect the dead letters: quantumflow dlq list --url %s\n", s.Backend)
	case s.DataDir != "":
		fmt.Fprintf(&b, "the dead letters stay in %s (run the demo again with --data-dir to add to them)\n", s.DataDir)
	}
	if s.Kept && s.Namespace != "" {
		fmt.Fprintf(&b, "the demo's queues are kept in namespace %s\n", s.Namespace)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
