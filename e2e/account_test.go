//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/journal"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// msgKey is one message in one queue, as the backend names the queue: an
// instance's copy of an addressed or broadcast message is its own message
// ("QUEUE@INSTANCE").
type msgKey struct{ queue, id string }

func (k msgKey) String() string { return k.queue + " " + k.id }

// row is the accounting of one queue. Every message published is counted
// once: consumed, else dead-lettered, else pending, else lost.
type row struct {
	Queue                              string
	Published, Consumed, DeadLettered  int
	Pending, Lost                      int
	Duplicates, Misrouted, Unjournaled int
	// MaxWait is the longest a message consumed waited from its publish
	// to its first consumption.
	MaxWait    time.Duration
	byInstance bool
}

// accounting is what the journals and the backend say became of the
// messages.
type accounting struct {
	Rows  []row
	Total row
	// Lost lists messages published and neither consumed, dead-lettered
	// nor pending.
	Lost []msgKey
	// Duplicates are messages consumed more than once, with how often.
	Duplicates map[msgKey]int
	// Misrouted describes each delivery to the wrong process.
	Misrouted []string
	// Unjournaled are messages consumed or dead-lettered that no journal
	// says were published: the latest safety profile replayed to an
	// instance that registered after it was broadcast (published by the
	// backend, not a publisher), a publish that returned an error after
	// the backend had stored the message (a lost acknowledgement), or a
	// publish whose journal line a SIGKILL cut off.
	Unjournaled []msgKey
	// CutLines counts journal lines cut short by a SIGKILL.
	CutLines int
}

// account settles the books. pending may be nil (while the services run,
// what is neither consumed nor dead-lettered counts as lost).
func account(entries []journal.Entry, deadLetters []pubsub.DeadLetter, pending []pubsub.PendingMessage) accounting {
	a := accounting{Duplicates: map[msgKey]int{}}
	rows := map[string]*row{}
	rowOf := func(queue string) *row {
		r, ok := rows[queue]
		if !ok {
			_, inst := pubsub.SplitInstanceQueue(queue)
			r = &row{Queue: queue, byInstance: inst != ""}
			rows[queue] = r
		}
		return r
	}
	published := map[msgKey]time.Time{}
	consumed := map[msgKey]int{}
	firstConsumed := map[msgKey]time.Time{}
	for _, e := range entries {
		k := msgKey{e.Queue, e.ID}
		switch e.Event {
		case journal.Published:
			if _, seen := published[k]; !seen {
				published[k] = e.Time
				rowOf(e.Queue).Published++
			}
		case journal.Consumed:
			consumed[k]++
			if t, seen := firstConsumed[k]; !seen || e.Time.Before(t) {
				firstConsumed[k] = e.Time
			}
			if why := misrouted(e); why != "" {
				rowOf(e.Queue).Misrouted++
				a.Misrouted = append(a.Misrouted, fmt.Sprintf("%s: %s", k, why))
			}
		}
	}
	deadLettered := map[msgKey]bool{}
	for _, d := range deadLetters {
		deadLettered[msgKey{d.Queue, d.ID}] = true
	}
	waiting := map[msgKey]bool{}
	for _, p := range pending {
		waiting[msgKey{p.Queue, p.ID}] = true
	}

	for k, at := range published {
		r := rowOf(k.queue)
		switch {
		case consumed[k] > 0:
			r.Consumed++
			r.MaxWait = max(r.MaxWait, firstConsumed[k].Sub(at))
		case deadLettered[k]:
			r.DeadLettered++
		case waiting[k]:
			r.Pending++
		default:
			r.Lost++
			a.Lost = append(a.Lost, k)
		}
	}
	for k, n := range consumed {
		if n > 1 {
			rowOf(k.queue).Duplicates++
			a.Duplicates[k] = n
		}
		if _, ok := published[k]; !ok {
			rowOf(k.queue).Unjournaled++
			a.Unjournaled = append(a.Unjournaled, k)
		}
	}
	for k := range deadLettered {
		if _, ok := published[k]; !ok && consumed[k] == 0 {
			rowOf(k.queue).Unjournaled++
			a.Unjournaled = append(a.Unjournaled, k)
		}
	}

	for _, r := range rows {
		a.Rows = append(a.Rows, *r)
	}
	// Work queues first, then each queue's instance copies.
	slices.SortFunc(a.Rows, func(x, y row) int {
		if x.byInstance != y.byInstance {
			if x.byInstance {
				return 1
			}
			return -1
		}
		return strings.Compare(x.Queue, y.Queue)
	})
	a.Total.Queue = "total"
	for _, r := range a.Rows {
		a.Total.Published += r.Published
		a.Total.Consumed += r.Consumed
		a.Total.DeadLettered += r.DeadLettered
		a.Total.Pending += r.Pending
		a.Total.Lost += r.Lost
		a.Total.Duplicates += r.Duplicates
		a.Total.Misrouted += r.Misrouted
		a.Total.Unjournaled += r.Unjournaled
		a.Total.MaxWait = max(a.Total.MaxWait, r.MaxWait)
	}
	slices.SortFunc(a.Lost, func(x, y msgKey) int { return strings.Compare(x.String(), y.String()) })
	slices.SortFunc(a.Unjournaled, func(x, y msgKey) int { return strings.Compare(x.String(), y.String()) })
	slices.Sort(a.Misrouted)
	return a
}

// misrouted says why a consumed message went to the wrong process, or "":
// a queue consumed by a service that does not consume it, an instance's
// copy consumed by another instance, a consensus result for another
// proposer's proposal, a rollback for another instance.
func misrouted(e journal.Entry) string {
	queue, inst := pubsub.SplitInstanceQueue(e.Queue)
	if cfg, ok := topology.Default(e.Service); !ok {
		return fmt.Sprintf("consumed by unknown service %q", e.Service)
	} else if _, ok := cfg.Consumer(queue); !ok {
		return fmt.Sprintf("consumed by %s, which does not consume %s", e.Service, queue)
	}
	if inst != "" && e.Instance != inst {
		return fmt.Sprintf("%s's copy consumed by %s", inst, e.Instance)
	}
	if queue != topology.ConsensusQueue && queue != topology.RollbackQueue {
		return ""
	}
	var named struct {
		Instance string `json:"instance"`
	}
	if err := json.Unmarshal(e.PayloadBytes(), &named); err != nil {
		return "" // a malformed payload is dead-lettered, never consumed
	}
	if named.Instance != e.Instance && (queue == topology.ConsensusQueue || named.Instance != pubsub.InstanceAll) {
		if queue == topology.ConsensusQueue {
			return fmt.Sprintf("result for %s's proposal consumed by %s", named.Instance, e.Instance)
		}
		return fmt.Sprintf("rollback for %s consumed by %s", named.Instance, e.Instance)
	}
	return ""
}

// write prints the accounting table.
func (a accounting) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "queue\tpublished\tconsumed\tdead-lettered\tpending\tlost\tduplicates\tmisrouted\tunjournaled\tmax wait")
	for _, r := range append(a.Rows, a.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1fs\n", r.Queue, r.Published, r.Consumed, r.DeadLettered,
			r.Pending, r.Lost, r.Duplicates, r.Misrouted, r.Unjournaled, r.MaxWait.Seconds())
	}
	_ = tw.Flush()
}

// table returns the accounting table.
func (a accounting) table() string {
	var b strings.Builder
	a.write(&b)
	return b.String()
}

// TestAccount checks the books on a made-up history.
func TestAccount(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	pub := func(queue, id string) journal.Entry {
		return journal.Entry{Event: journal.Published, Queue: queue, ID: id, Time: at}
	}
	con := func(queue, id, service, instance, payload string) journal.Entry {
		e := journal.Entry{Event: journal.Consumed, Queue: queue, ID: id, Service: service, Instance: instance, Time: at.Add(time.Second)}
		if payload != "" {
			e.Payload = json.RawMessage(payload)
		}
		return e
	}
	cc, sg := topology.CentralCloud, topology.Singularity
	results := func(inst string) string { return pubsub.InstanceQueue(topology.ConsensusQueue, inst) }
	entries := []journal.Entry{
		pub(topology.ProposalsQueue, "twice"),
		con(topology.ProposalsQueue, "twice", cc, "cc", ""),
		con(topology.ProposalsQueue, "twice", cc, "cc", ""),
		pub(topology.ProposalsQueue, "dead"),
		pub(topology.ProposalsQueue, "waiting"),
		pub(topology.ProposalsQueue, "lost"),
		pub(topology.MetricsQueue, "wrong-service"),
		con(topology.MetricsQueue, "wrong-service", sg, "s1", ""),
		con(topology.MetricsQueue, "unjournaled", cc, "cc", ""),
		pub(results("s1"), "other-instance"),
		con(results("s1"), "other-instance", sg, "s2", `{"instance":"s1"}`),
		pub(results("s1"), "other-proposer"),
		con(results("s1"), "other-proposer", sg, "s1", `{"instance":"s2"}`),
		pub(results("s1"), "fine"),
		con(results("s1"), "fine", sg, "s1", `{"instance":"s1"}`),
		pub(pubsub.InstanceQueue(topology.RollbackQueue, "s1"), "all"),
		con(pubsub.InstanceQueue(topology.RollbackQueue, "s1"), "all", sg, "s1", `{"instance":"all"}`),
	}
	dls := []pubsub.DeadLetter{{Queue: topology.ProposalsQueue, ID: "dead"}}
	pending := []pubsub.PendingMessage{{Queue: topology.ProposalsQueue, ID: "waiting"}}

	a := account(entries, dls, pending)
	require.Equal(t, []msgKey{{topology.ProposalsQueue, "lost"}}, a.Lost)
	require.Equal(t, map[msgKey]int{{topology.ProposalsQueue, "twice"}: 2}, a.Duplicates)
	require.Equal(t, []msgKey{{topology.MetricsQueue, "unjournaled"}}, a.Unjournaled)
	require.Len(t, a.Misrouted, 3, a.Misrouted)
	require.Contains(t, a.Misrouted[0], "s1's copy consumed by s2")
	require.Contains(t, a.Misrouted[1], "result for s2's proposal consumed by s1")
	require.Contains(t, a.Misrouted[2], "singularity, which does not consume metrics_to_guardian_queue")

	rows := map[string]row{}
	for _, r := range a.Rows {
		rows[r.Queue] = r
		require.Equal(t, r.Published, r.Consumed+r.DeadLettered+r.Pending+r.Lost, "every message published counted once: %+v", r)
	}
	p := rows[topology.ProposalsQueue]
	require.Equal(t, row{Queue: topology.ProposalsQueue, Published: 4, Consumed: 1, DeadLettered: 1, Pending: 1, Lost: 1, Duplicates: 1, MaxWait: time.Second}, p)
	require.Equal(t, 2, rows[results("s1")].Misrouted)
	require.Equal(t, row{Queue: "total", Published: 9, Consumed: 6, DeadLettered: 1, Pending: 1, Lost: 1, Duplicates: 1, Misrouted: 3, Unjournaled: 1, MaxWait: time.Second}, a.Total)
	require.Equal(t, topology.MetricsQueue, a.Rows[0].Queue, "work queues first")
	require.Regexp(t, `(?m)^queue +published +consumed +dead-lettered +pending +lost +duplicates +misrouted +unjournaled +max wait`, a.table())
	require.Regexp(t, `(?m)^total +9 +6 +1 +1 +1 +1 +3 +1 +1.0s`, a.table())
}
