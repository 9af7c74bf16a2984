package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quantumflow/quantumflow/topology"
)

// Output file names inside the output directory.
const (
	FileJSON     = "results.json"
	FileMarkdown = "results.md"
	FileSVG      = "results.svg"
)

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, fmt.Errorf("bench: read report: %w", err)
	}
	return &rep, nil
}

// Failed lists the scenario/subject pairs with a measurement that failed,
// sorted, each once. An instance count the instances search tried beyond
// the planned ones (Result.Searched) is not among them: its failure says
// the machine does not hold that count, which the report gives.
func (rep *Report) Failed() []string {
	var failed []string
	for _, r := range rep.Results {
		if r != nil && r.Error != "" && !r.Searched {
			failed = append(failed, r.Scenario+"/"+r.Subject)
		}
	}
	slices.Sort(failed)
	return slices.Compact(failed)
}

// WriteFiles writes results.json, results.md and results.svg into dir,
// creating it.
func (rep *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: output dir: %w", err)
	}
	for name, write := range map[string]func(io.Writer) error{
		FileJSON:     rep.WriteJSON,
		FileMarkdown: func(w io.Writer) error { return rep.WriteMarkdown(w, "") },
		FileSVG:      rep.WriteSVG,
	} {
		if err := writeFile(filepath.Join(dir, name), write); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	return nil
}

// WriteResultsFiles writes the Markdown report to mdPath (bench/RESULTS.md)
// and, beside it with the same name, the chart (.svg, linked from the
// Markdown) and the JSON (.json), so that the committed results carry
// their chart and data.
func (rep *Report) WriteResultsFiles(mdPath string) error {
	stem := strings.TrimSuffix(mdPath, filepath.Ext(mdPath))
	svgPath, jsonPath := stem+".svg", stem+".json"
	if err := writeFile(svgPath, rep.WriteSVG); err != nil {
		return err
	}
	if err := writeFile(jsonPath, rep.WriteJSON); err != nil {
		return err
	}
	return writeFile(mdPath, func(w io.Writer) error { return rep.WriteMarkdown(w, filepath.Base(svgPath)) })
}

// scenarioDoc says what each scenario's table shows.
var scenarioDoc = map[string]struct{ title, doc string }{
	ScenarioPublish: {"Publish, one message per call",
		"Concurrent publishers each publishing one message per call, back to back, for the publish window after a warm-up. msg/s published (the call returned). The pgx floor uses at most 8 connections: its 64-publisher figure is its 8-connection figure. jetstream_msgid is the jetstream floor with a unique Nats-Msg-Id on each message: the NATS backend always sends one (the message UUID, for issue 4's retry dedup), and the server's duplicate check costs publish throughput the plain floor does not pay."},
	ScenarioPublishBatch: {"Publish, 100 messages per call",
		"4 concurrent publishers, 100 messages per call. pgx: COPY of 100 rows per transaction; jetstream: 100 PublishAsync then wait for every PubAck (jetstream_msgid: the same with a Nats-Msg-Id on each, as the NATS backend sends); watermill-sql: one multi-row INSERT."},
	ScenarioPublishDedup: {"Publish with dedup keys",
		"Issue 12: every message published with a dedup key of its own (no duplicates: what the check costs), against the same publish without keys on the same backend in the same run; 8 publishers of 1 message per call and 4 of 100. PostgreSQL claims each key in quantum_flow_dedup in the publish's transaction; NATS sends the key as Nats-Msg-Id and takes the per-message path (its acks say which were duplicates) instead of fast batches; mem looks the key up in a map; raw pgx writes each key into a unique index beside its row and does nothing else (no conflict handling: the floor of any durable dedup on PostgreSQL). Ratio: with keys / without (issue 12: ≥ 0.9)."},
	ScenarioConsume: {"Consume from a preloaded backlog",
		"The backlog is published first, then the workers take messages (no-op handler, ack). msg/s from the first message received to the last of the backlog (or the consume bound). pgx and jetstream floors run at most 4 consumers; GoChannel fans out and runs one subscription."},
	ScenarioTypedConsume: {"Typed consume",
		"The consume scenario (4 workers, preloaded backlog) with a router.Handler run on each message before its ack: typed is router.Handle decoding the payload as a contract, validating it and building its Meta before a no-op; untyped is a no-op Handler on the raw message. Each backend is compared with its untyped run (issue 12: typed ≥ 0.9× on PostgreSQL and NATS)."},
	ScenarioLatency: {"End-to-end latency at fixed rates",
		"Messages sent on an open-loop schedule (32 senders, one message per call) to 4 consuming workers; latency from each message's intended send time to its arrival, so a stall delays every message scheduled behind it and shows (no coordinated omission). Missing messages count with the time they had waited. The harness itself (timer wake-ups, goroutine hand-offs) adds a few tenths of a millisecond: GoChannel's figure is that floor. Ratios: lower is better."},
	ScenarioRoundTrip: {"Topology round trip",
		"Backends through the router: a Singularity instance publishes a proposal, CentralCloud's handle_proposal_for_consensus publishes a consensus result, the instance's handle_consensus_result receives it (seed worker counts: 3 and 2). Baselines do the same with two queues directly. Latency from the proposal's intended send time. Ratios: lower is better."},
	ScenarioAddressed: {"Delivery to instances: addressed round trip",
		"The round trip with N Singularity routers (sg-1 … sg-N) and one CentralCloud router on one backend: proposals at the round-trip rate in all, from the instances in turn; CentralCloud answers each with Publisher.Reply, which addresses the consensus result to the instance that proposed. Latency from the proposal's intended send time to the result's arrival at its proposer; a result received by another instance is misrouted (it stays missing for its proposer, and any misroute fails the measurement). Each backend is compared with itself in the same run: one instance with consensus_results_queue as a work queue on both services, the round trip as it was before addressing (issue 11: addressed ≤ 1.3× of it at p50 and p99). Ratios: lower is better."},
	ScenarioBroadcast: {"Delivery to instances: broadcast fan-out",
		"N Singularity routers and one CentralCloud router on one backend; CentralCloud publishes safety profiles (guardian_safety_profiles_queue, broadcast delivery) at a modest fixed rate, and each profile's latency runs from its intended send time until the last of the N instances has its copy. Copies delivered / expected counts each instance's copy of each profile once and must be 1.00: a copy still missing after the drain fails the measurement, and the run then waits up to 35 s more (past a NATS consumer's ack_wait) to say whether it came late, and when, or not at all."},
	ScenarioBacklog: {"Backlog growth",
		fmt.Sprintf("Consume rate (4 workers) with a small and with a large backlog waiting: the median of %d samples, each starting the workers and timing the first messages from the first one; between samples the small backlog is topped up to its size again. First message after: the median time from starting the workers (their Subscribe calls) to the first message any of them received. The ratio compares the large backlog with the small one on the same backend.", backlogRepeats)},
	ScenarioMixed: {"Mixed topology at the seed's scaling profiles",
		"N Singularity routers and one CentralCloud router on one backend, with the profile's worker counts. Offered load per instance: 4 proposals/s (each answered by a consensus result), 10 metrics/s, 2 patterns/s; from CentralCloud 0.5 rollback triggers/s per instance (each addressed to one instance) and 0.5 safety profiles/s in all, each broadcast to every instance, so that every instance receives 0.5/s (counted once in the offered and delivered rates). Ratio: delivered / offered (1.00 = kept up)."},
	ScenarioInstances: {"Many instances",
		"Issue 16. The mixed run at the large profile's per-instance load (4 proposals/s, 10 metrics/s, 2 patterns/s per instance; from CentralCloud 0.5 rollback triggers/s per instance and 0.5 safety profiles/s broadcast to every instance) with 25, 50, 100 and 200 Singularity routers (5 and 10 in quick mode), then, searching for the largest count the machine holds at delivered / offered 1.00, twice as many each time while every count held, up to 1,600 (20 in quick mode), and after a count that did not hold halfway between the largest count held and it, until the two are at most a quarter of the count held apart (the rows marked searched), and one CentralCloud router, all in this one process on one backend: on PostgreSQL one connection pool and one LISTEN connection for all of them, on NATS one connection. Delivered / offered as in the mixed run (1.00 = kept up; missing: not received within the drain). Connections: the most the server held for the run in samples taken while it ran (at least five per window): on PostgreSQL the rows of pg_stat_activity on the backend's database other than the counting connection (the pool's and the LISTEN connection), against a budget of 2 per instance plus CentralCloud's pool — here the process's one pool, its pool_max_conns —; on NATS the embedded server's client connections, against 1 per instance. On PostgreSQL the note gives the pool's acquires and how many waited for a connection. Delivered / offered is counted once the sends are done and drained: when the publishes fall behind the offered rate, it can still read 1.00, and the proposal→result latency (from each proposal's intended send time) shows by how much they fell behind. CPU: how busy the machine's CPUs were while the routers ran (/proc/stat, which counts by the clock tick and can read low under bursty load), this process's part of them (exact: the routers, the load and, on NATS, the embedded server; on PostgreSQL most of the rest is the database server), and for how much of the time some task waited for a CPU (/proc/pressure/cpu)."},
	ScenarioVacuum: {"Held-back vacuum",
		"Issue 16. A backlog is preloaded and kept at its size: 4 workers consume (no-op handler, ack) while 4 publishers replace what they take (batches of 100; a fixed publish rate would drain the backlog within seconds). The consume rate is measured for the hold's duration without a hold, then for as long while another connection holds a REPEATABLE READ transaction with an xid (txid_current) open on the same database: no row deleted meanwhile can be vacuumed, nor its index entry killed, so each claim may walk past all of them. A probe claims one message every 20 ms through the backend's driver (ReceiveBatch, then an ack) and times it: claim p50 / p99. After the hold, consuming and publishing go on for the recovery window while the messages table's n_dead_tup (pg_stat_user_tables) is watched: the figure is the time until it is first under the bound (the backlog plus 10k; between vacuums n_dead_tup climbs by about one per consumed message: autovacuum visits once a minute by default, the PostgreSQL backend vacuums the table itself once it holds vacuum_threshold dead tuples, 50k by default; both counts are in the notes), and the rate and claims after the hold say how fast consuming recovers. pgx is the raw SKIP LOCKED claim-100 + delete loop on the same index, for reference (no probe)."},
	ScenarioInFlight: {"Slow messages in flight",
		"Issue 16, PostgreSQL. Claim times of one message (the backend driver's ReceiveBatch of 1, then an ack), 1,000 of them per phase (100 in quick mode): with nothing held; right after N messages at the head of the queue were claimed and held, still in the queue index, so that each claim walks past them (what every claim paid before this round, however long the messages were held); and after their first lease extension (the engine extends what it holds every third of the lease) parked them out of the index. Then the reaper's pass (ReapExpired, the median of 5, nothing expired) on the table as it is and after a 1M-message backlog was loaded into another queue, beside one read of that table for expired leases, which is what the reaper did every half lease before; and one pass that returns 1,000 parked leases made expired."},
	ScenarioSteady: {"Steady state at half the measured maximum",
		"Issue 16. First the maximum: 32 publishers (one message per call) and 4 consuming workers flat out together on a queue of their own, for the steady probe window; the maximum is the rate consumed. Then half of it offered on an open-loop schedule (32 senders, one message per call, as the latency scenario) to 4 workers on a fresh queue, for the steady duration; latency from each message's intended send time, per window of intended send time (missing messages count with the time they had waited); delivered / offered over the whole run after the drain; and the storage size read every 5 s while traffic flows, the largest reading of each window kept (a vacuumed and truncated table moves between a fraction and a multiple of its typical size within a minute, so a reading at each window's end compared points of that cycle): on PostgreSQL pg_total_relation_size of quantum_flow_messages (heap, indexes, TOAST; every queue of the database shares the table), on NATS the queue's stream directory in the embedded server's store (message blocks, index, consumer state), the stream's stored bytes beside it. Targets: last window's p99 ≤ 1.5× the first's, delivered / offered 1.00, the last window's largest size ≤ 2× the first window's (on NATS a size within one 4 MiB message block counts as one block: the file store appends to a block until it is full and frees it once it is empty, so a stream of a few messages moves between a few KiB and a block)."},
}

// WriteMarkdown writes the report as Markdown: targets, subjects, then one
// table per scenario with every figure's ratio to its baseline.
func (rep *Report) WriteMarkdown(w io.Writer, chartPath string) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# QuantumFlow benchmark results\n\n")
	if rep.Command != "" {
		fmt.Fprintf(b, "Regenerate with:\n\n```sh\n%s\n```\n\n", rep.Command)
	}
	fmt.Fprintf(b, "Mode **%s**, started %s, took %s.\n\n", rep.Mode, rep.Started.Format(time.RFC3339), time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	m := rep.Machine
	fmt.Fprintf(b, "**Machine** (every figure below was measured here, in one run): %s, %d cores (GOMAXPROCS %d)", m.CPU, m.Cores, m.GOMAXPROCS)
	if m.MemoryGiB > 0 {
		fmt.Fprintf(b, ", %d GiB RAM", m.MemoryGiB)
	}
	fmt.Fprintf(b, ", %s", m.OS)
	if m.Kernel != "" {
		fmt.Fprintf(b, " (kernel %s)", m.Kernel)
	}
	fmt.Fprintf(b, ", %s", m.GoVersion)
	if m.LoadAverage != "" {
		fmt.Fprintf(b, "; load average when the run started %s (1, 5, 15 min)", m.LoadAverage)
	}
	fmt.Fprintf(b, ".\n")
	if m.PostgreSQL != "" {
		fmt.Fprintf(b, "PostgreSQL %s, throwaway cluster on loopback: %s.\n", m.PostgreSQL, m.settingsLine())
	} else {
		fmt.Fprintf(b, "PostgreSQL: not available in this run.\n")
	}
	fmt.Fprintf(b, "NATS: nats-server %s embedded in the process, file storage; one server with the default sync policy, one with SyncAlways.\n\n", m.NATSServer)
	if chartPath != "" {
		fmt.Fprintf(b, "![throughput and latency by backend](%s)\n\n", chartPath)
	}

	if len(rep.Targets) > 0 {
		fmt.Fprintf(b, "## Targets of %s\n\n", rep.targetIssues())
		fmt.Fprintf(b, "| issue | target | figure | status | from |\n|---|---|---|---|---|\n")
		for _, t := range rep.Targets {
			fig := "—"
			if t.Met != nil {
				switch {
				case t.Op == "": // only reported: met once measured
					fig = fmt.Sprintf("%.2f %s (reported)", t.Figure, t.Unit)
				case t.Unit == "ms":
					fig = fmt.Sprintf("%.2f ms (%s %g)", t.Figure, t.Op, t.Threshold)
				case t.Unit == "s":
					fig = fmt.Sprintf("%.1f s (%s %g s)", t.Figure, t.Op, t.Threshold)
				case t.Unit == "connections" || t.Unit == "instances":
					fig = fmt.Sprintf("%.0f %s (%s %g)", t.Figure, t.Unit, t.Op, t.Threshold)
				default:
					fig = fmt.Sprintf("%.2f× (%s %g×)", t.Figure, t.Op, t.Threshold)
				}
			}
			status := t.Status()
			if t.Met != nil && *t.Met {
				status = "✅ met"
			} else if t.Met != nil {
				status = "❌ NOT met"
			}
			detail := t.Detail
			if t.Note != "" {
				detail += " — " + t.Note
			}
			fmt.Fprintf(b, "| %d | %s | %s | %s | %s |\n", t.Issue, t.Text, fig, status, mdEscape(detail))
		}
		fmt.Fprintf(b, "\n")
	}

	rep.writeSideBySide(b)

	fmt.Fprintf(b, "## Subjects\n\n| subject | kind | what | durability |\n|---|---|---|---|\n")
	for _, s := range rep.Subjects {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", s.Name, s.Kind, mdEscape(s.Description), mdEscape(s.Durability))
	}
	fmt.Fprintf(b, "\nScale of this run: publish window %s after %s warm-up; consume preload %d (at most %s); latency window %s per rate, drain %s; round trip %g/s for %s; backlogs %d and %d (sample %d); mixed %s per profile; addressed round trip and broadcast with %d instances, broadcast %g profiles/s for %s.\n\n",
		rep.Sizes.Publish.D(), rep.Sizes.Warmup.D(), rep.Sizes.Preload, rep.Sizes.PreloadMax.D(), rep.Sizes.Latency.D(), rep.Sizes.Drain.D(),
		rep.Sizes.RoundTripRate, rep.Sizes.RoundTrip.D(), rep.Sizes.BacklogSmall, rep.Sizes.BacklogLarge, rep.Sizes.BacklogSample, rep.Sizes.Mixed.D(),
		rep.Sizes.Instances, rep.Sizes.BroadcastRate, rep.Sizes.Broadcast.D())

	for _, sc := range Scenarios() {
		rows := rep.resultsOf(sc)
		if len(rows) == 0 {
			continue
		}
		d := scenarioDoc[sc]
		fmt.Fprintf(b, "## %s (`%s`)\n\n%s\n\n", d.title, sc, d.doc)
		fmt.Fprintf(b, "Machine: %s.\n\n", rows[0].Machine)
		writeTable(b, sc, rows)
		fmt.Fprintf(b, "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// issueTopics names the issues that set targets.
var issueTopics = map[int]string{3: "PostgreSQL", 4: "NATS", 11: "delivery to instances", 12: "typed contracts and effectively-once", 16: "performance, round two"}

// targetIssues lists the issues of the report's targets:
// "issues 3 (PostgreSQL), 4 (NATS) and 11 (delivery to instances)".
func (rep *Report) targetIssues() string {
	var nums []int
	for _, t := range rep.Targets {
		if !slices.Contains(nums, t.Issue) {
			nums = append(nums, t.Issue)
		}
	}
	slices.Sort(nums)
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = fmt.Sprint(n)
		if topic := issueTopics[n]; topic != "" {
			parts[i] += " (" + topic + ")"
		}
	}
	if len(parts) == 1 {
		return "issue " + parts[0]
	}
	return "issues " + strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// resultsOf returns a scenario's results ordered by case, then backends
// before baselines in subject order.
func (rep *Report) resultsOf(scenario string) []*Result {
	var out []*Result
	for _, r := range rep.Results {
		if r != nil && r.Scenario == scenario {
			out = append(out, r)
		}
	}
	order := map[string]int{}
	for i, d := range subjectDefs {
		order[d.Name] = i
	}
	slices.SortStableFunc(out, func(a, b *Result) int {
		return cmp.Or(
			cmp.Compare(a.CaseOrder, b.CaseOrder),
			cmp.Compare(order[a.Subject], order[b.Subject]),
			cmp.Compare(a.Params.Pending, b.Params.Pending),
		)
	})
	return out
}

// tableOf is a scenario's table: its header and each result's cells.
func tableOf(sc string) (head []string, cells func(r *Result) []string) {
	subj := func(r *Result) string {
		if r.Kind == KindBackend {
			return "**" + r.Subject + "**"
		}
		return r.Subject
	}
	switch sc {
	case ScenarioPublish, ScenarioPublishBatch:
		head = []string{"subject", "payload", "publishers", "per call", "msg/s", "vs baseline (higher is better)"}
		cells = func(r *Result) []string {
			return []string{subj(r), fmtBytes(r.PayloadBytes), fmt.Sprint(r.Publishers), fmt.Sprint(r.Batch), figure(r), ratios(r)}
		}
	case ScenarioPublishDedup:
		head = []string{"subject", "publishers", "per call", "dedup keys", "msg/s", "vs without keys (higher is better)"}
		cells = func(r *Result) []string {
			return []string{subj(r), fmt.Sprint(r.Publishers), fmt.Sprint(r.Batch), yesNo(r.Dedup), figure(r), ratios(r)}
		}
	case ScenarioConsume:
		head = []string{"subject", "payload", "workers", "pending", "msg/s", "vs baseline (higher is better)"}
		cells = func(r *Result) []string {
			return []string{subj(r), fmtBytes(r.PayloadBytes), fmt.Sprint(r.Workers), fmt.Sprint(r.Pending), figure(r), ratios(r)}
		}
	case ScenarioTypedConsume:
		head = []string{"subject", "handler", "workers", "pending", "msg/s", "vs untyped (higher is better)"}
		cells = func(r *Result) []string {
			return []string{subj(r), r.Handler, fmt.Sprint(r.Workers), fmt.Sprint(r.Pending), figure(r), ratios(r)}
		}
	case ScenarioBacklog:
		head = []string{"subject", "workers", "pending", "msg/s", "first message after", "vs small backlog"}
		cells = func(r *Result) []string {
			return []string{subj(r), fmt.Sprint(r.Workers), fmt.Sprint(r.Pending), figure(r), fmt.Sprintf("%.2f ms", r.FirstMessageMs), ratios(r)}
		}
	case ScenarioLatency, ScenarioRoundTrip:
		head = []string{"subject", "rate msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "received", "missing", "vs baseline (lower is better)"}
		cells = func(r *Result) []string {
			return append([]string{subj(r), fmt.Sprintf("%g", r.Params.Rate)}, latCells(r)...)
		}
	case ScenarioAddressed:
		head = []string{"subject", "delivery", "instances", "rate msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "received", "missing", "misrouted", "vs work queue (lower is better)"}
		cells = func(r *Result) []string {
			l := latCells(r)
			return append(append([]string{subj(r), r.Delivery, fmt.Sprint(r.Instances), fmt.Sprintf("%g", r.Params.Rate)}, l[:6]...), fmt.Sprint(r.Misrouted), l[6])
		}
	case ScenarioBroadcast:
		head = []string{"subject", "instances", "profiles/s", "all copies in: p50 ms", "p95 ms", "p99 ms", "max ms", "profiles to every instance", "copies delivered / expected", "duplicate copies"}
		cells = func(r *Result) []string {
			l := latCells(r)
			copies := ""
			if r.CopiesExpected > 0 {
				copies = fmt.Sprintf("%d / %d (%.2f)", r.Copies, r.CopiesExpected, float64(r.Copies)/float64(r.CopiesExpected))
			}
			return append(append([]string{subj(r), fmt.Sprint(r.Instances), fmt.Sprintf("%g", r.Params.Rate)}, l[:4]...),
				fmt.Sprintf("%d of %d", r.Messages, r.Messages+r.Missing), copies, fmt.Sprint(r.Duplicates))
		}
	case ScenarioMixed:
		head, cells = mixedTable(subj)
	case ScenarioInstances:
		head, cells = instancesTable(subj)
	case ScenarioSteady:
		head, cells = steadyTable(subj)
	case ScenarioVacuum:
		head, cells = vacuumTable(subj)
	case ScenarioInFlight:
		head, cells = inFlightTable(subj)
	}
	return head, cells
}

// mixedTable is the mixed scenario's table.
func mixedTable(subj func(*Result) string) ([]string, func(*Result) []string) {
	head := []string{"subject", "profile", "instances", "offered msg/s", "delivered msg/s", "delivered/offered", "proposal→result p50 / p99 ms", "rollback p50 / p99 ms", "worst queue p99 ms", "missing"}
	return head, func(r *Result) []string {
		if r.Error != "" {
			return []string{subj(r), r.Profile, fmt.Sprint(r.Instances), "", "error: " + mdEscape(r.Error), "", "", "", "", ""}
		}
		var rt, rb string
		worst := 0.0
		for _, q := range r.Queues {
			if q.Latency == nil {
				continue
			}
			worst = max(worst, q.Latency.P99Ms)
			if q.RoundTrip {
				rt = fmt.Sprintf("%.1f / %.1f", q.Latency.P50Ms, q.Latency.P99Ms)
			}
			if strings.HasPrefix(q.Queue, "rollback") {
				rb = fmt.Sprintf("%.1f / %.1f", q.Latency.P50Ms, q.Latency.P99Ms)
			}
		}
		return []string{subj(r), r.Profile, fmt.Sprint(r.Instances), fmt.Sprintf("%.0f", r.Params.Rate), fmt.Sprintf("%.0f", r.Throughput), ratios(r), rt, rb, fmt.Sprintf("%.1f", worst), fmt.Sprint(r.Missing)}
	}
}

// writeTable writes a scenario's table of rows, then the notes of its
// results.
func writeTable(b *strings.Builder, sc string, rows []*Result) {
	head, cells := tableOf(sc)
	fmt.Fprintf(b, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range rows {
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells(r), " | "))
	}
	var notes []string
	for _, r := range rows {
		if r.Note != "" && r.Error == "" {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", r.Subject, caseLabel(r), r.Note))
		}
		// A measurement that failed after measuring (a misroute, a lost
		// copy) shows its figures above: say why it failed here.
		if r.Error != "" && r.Latency != nil {
			notes = append(notes, fmt.Sprintf("- %s %s: **failed**: %s", r.Subject, caseLabel(r), mdEscape(r.Error)))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(b, "\n%s\n", strings.Join(notes, "\n"))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func caseLabel(r *Result) string {
	var parts []string
	if r.PayloadBytes > 0 {
		parts = append(parts, fmtBytes(r.PayloadBytes))
	}
	if r.Publishers > 0 {
		parts = append(parts, plural(r.Publishers, "publisher"))
	}
	if r.Workers > 0 {
		parts = append(parts, plural(r.Workers, "worker"))
	}
	if r.Scenario == ScenarioLatency || r.Scenario == ScenarioRoundTrip || r.Scenario == ScenarioAddressed || r.Scenario == ScenarioBroadcast {
		parts = append(parts, fmt.Sprintf("%g msg/s", r.Params.Rate))
	}
	if r.Delivery != "" {
		parts = append(parts, r.Delivery)
	}
	if r.Instances > 0 && r.Profile == "" {
		parts = append(parts, plural(r.Instances, "instance"))
	}
	if r.Scenario == ScenarioBacklog {
		parts = append(parts, fmt.Sprintf("%d pending", r.Pending))
	}
	if r.Profile != "" {
		parts = append(parts, r.Profile)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func figure(r *Result) string {
	if r.Error != "" {
		return "error: " + mdEscape(r.Error)
	}
	return fmtRate(r.Throughput)
}

func latCells(r *Result) []string {
	if r.Error != "" && r.Latency == nil {
		return []string{"error: " + mdEscape(r.Error), "", "", "", "", "", ""}
	}
	l := r.Latency
	if l == nil {
		return []string{"", "", "", "", "", "", ""}
	}
	return []string{fmtMs(l.P50Ms), fmtMs(l.P95Ms), fmtMs(l.P99Ms), fmtMs(l.MaxMs), fmt.Sprint(r.Messages), fmt.Sprint(r.Missing), ratios(r)}
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// ratios formats a result's ratios: "0.93× pgx (8 publishers)".
func ratios(r *Result) string {
	if r.Error != "" {
		return ""
	}
	var out []string
	for _, x := range r.Ratios {
		s := fmtRatio(x.Value) + " " + x.Baseline
		if x.Metric == "p50" || x.Metric == "p99" {
			s = x.Metric + " " + s
		}
		if x.BaselineParams != "" {
			s += " (" + x.BaselineParams + ")"
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "—"
	}
	return strings.Join(out, "; ")
}

// fmtRatio prints a ratio with two significant digits at least, so that
// 0.003× does not read as 0.00×.
func fmtRatio(v float64) string {
	switch {
	case v >= 0.1:
		return fmt.Sprintf("%.2f×", v)
	case v >= 0.01:
		return fmt.Sprintf("%.3f×", v)
	default:
		return fmt.Sprintf("%.4f×", v)
	}
}

// compactRatios is the chart's shorter form: "0.21× pgx, 1.28× watermill_sql"
// or "gochannel: p50 0.94×, p99 0.19×".
func compactRatios(r *Result) string {
	var out []string
	for i := 0; i < len(r.Ratios); {
		x := r.Ratios[i]
		if x.Metric == "delivered" {
			out = append(out, "delivered "+fmtRatio(x.Value)+" of the "+x.Baseline)
			i++
			continue
		}
		if x.Metric == "throughput" {
			out = append(out, fmtRatio(x.Value)+" "+x.Baseline)
			i++
			continue
		}
		var parts []string
		k := i
		for ; k < len(r.Ratios) && r.Ratios[k].Baseline == x.Baseline && (r.Ratios[k].Metric == "p50" || r.Ratios[k].Metric == "p99"); k++ {
			parts = append(parts, r.Ratios[k].Metric+" "+fmtRatio(r.Ratios[k].Value))
		}
		out = append(out, x.Baseline+": "+strings.Join(parts, ", "))
		i = k
	}
	return strings.Join(out, "; ")
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

// writeSideBySide writes the backends' key figures in one table, postgres
// next to nats_sync: those two are at equal durability (a commit or a
// write is fsynced before it is acknowledged).
func (rep *Report) writeSideBySide(b *strings.Builder) {
	cols := []string{SubjectPostgres, SubjectPostgresSync, SubjectNATSSync, SubjectNATS, SubjectMem}
	find := func(sc, subject string, match func(*Result) bool) *Result {
		for _, r := range rep.Results {
			if r != nil && r.Scenario == sc && r.Subject == subject && match(r) {
				return r
			}
		}
		return nil
	}
	type row struct {
		label string
		sc    string
		match func(*Result) bool
		cell  func(*Result) string
	}
	thr := func(r *Result) string { return fmtRate(r.Throughput) + " msg/s" }
	lat := func(r *Result) string {
		if r.Latency == nil {
			return ""
		}
		s := fmtMs(r.Latency.P50Ms) + " / " + fmtMs(r.Latency.P99Ms) + " ms"
		if r.Missing > 0 {
			s += fmt.Sprintf(" (%d missing)", r.Missing)
		}
		return s
	}
	rows := []row{
		{"publish 1/call, 1 publisher", ScenarioPublish, func(r *Result) bool { return r.PayloadBytes == 256 && r.Publishers == 1 }, thr},
		{"publish 1/call, 64 publishers", ScenarioPublish, func(r *Result) bool { return r.PayloadBytes == 256 && r.Publishers == 64 }, thr},
		{"publish 100/call, 4 publishers", ScenarioPublishBatch, func(r *Result) bool { return r.PayloadBytes == 256 }, thr},
		{"publish 100/call, 4 KiB", ScenarioPublishBatch, func(r *Result) bool { return r.PayloadBytes == 4096 }, thr},
		{"consume, 4 workers", ScenarioConsume, func(r *Result) bool { return r.PayloadBytes == 256 && r.Workers == 4 }, thr},
		{"consume, 16 workers", ScenarioConsume, func(r *Result) bool { return r.PayloadBytes == 256 && r.Workers == 16 }, thr},
		{"latency p50 / p99 at 200 msg/s", ScenarioLatency, func(r *Result) bool { return r.Params.Rate == 200 }, lat},
		{"latency p50 / p99 at 2000 msg/s", ScenarioLatency, func(r *Result) bool { return r.Params.Rate == 2000 }, lat},
		{"round trip p50 / p99", ScenarioRoundTrip, func(*Result) bool { return true }, lat},
		{"mixed, large profile: round trip p50 / p99", ScenarioMixed, func(r *Result) bool { return r.Profile == "large" }, lat},
		{"round trip, work queue, 1 instance: p50 / p99", ScenarioAddressed, func(r *Result) bool { return r.Delivery == string(topology.DeliveryWork) }, lat},
		{fmt.Sprintf("round trip, addressed, %d instances: p50 / p99", rep.Sizes.Instances), ScenarioAddressed, func(r *Result) bool { return r.Delivery == string(topology.DeliveryAddressed) }, lat},
		{fmt.Sprintf("broadcast to %d instances, all copies in: p50 / p99", rep.Sizes.Instances), ScenarioBroadcast, func(*Result) bool { return true }, lat},
	}
	var lines []string
	for _, rw := range rows {
		cells := []string{rw.label}
		have := false
		for _, c := range cols {
			r := find(rw.sc, c, rw.match)
			switch {
			case r == nil:
				cells = append(cells, "")
			case r.Error != "":
				cells = append(cells, "error")
				have = true
			default:
				cells = append(cells, rw.cell(r))
				have = true
			}
		}
		if have {
			lines = append(lines, "| "+strings.Join(cells, " | ")+" |")
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "## Backends side by side\n\n")
	fmt.Fprintf(b, "256 B payloads unless stated. postgres and nats_sync are at equal durability for publishing (a publish returns once fsynced); postgres_sync_acks fsyncs claims and acks too (measured in consume and latency only); nats is JetStream's default (fsync every two minutes); mem keeps nothing.\n\n")
	fmt.Fprintf(b, "| figure | %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)+1))
	durs := []string{"durability"}
	for _, c := range cols {
		durs = append(durs, map[string]string{
			SubjectPostgres: "publish fsynced, acks async", SubjectPostgresSync: "publish and acks fsynced", SubjectNATSSync: "fsync per write", SubjectNATS: "fsync every 2 min", SubjectMem: "none",
		}[c])
	}
	fmt.Fprintf(b, "| %s |\n%s\n\n", strings.Join(durs, " | "), strings.Join(lines, "\n"))
}
