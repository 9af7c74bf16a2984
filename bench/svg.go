package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The chart is hand-written SVG: no plotting dependency, readable in a
// browser and on GitHub. Horizontal bars on log scales (throughputs span
// four decades, latencies five), one panel per scenario, backends in full
// colour and baselines in pale tones of the same family, each bar labelled
// with its figure and its ratio to its baseline.

var subjectColor = map[string]string{
	SubjectMem:            "#7f7f7f",
	SubjectPostgres:       "#336791",
	SubjectPostgresSync:   "#6f8fb5",
	SubjectNATS:           "#2ca02c",
	SubjectNATSSync:       "#0e7c86",
	SubjectGoChannel:      "#c7c7c7",
	SubjectPgx:            "#9ecae1",
	SubjectWatermillSQL:   "#fdae6b",
	SubjectJetStream:      "#98df8a",
	SubjectJetStreamSync:  "#9edae5",
	SubjectJetStreamMsgID: "#c5e8b7",
}

type svgBar struct {
	label  string
	color  string
	value  float64 // bar length
	whisk  float64 // optional second value (p99) drawn as a whisker
	text   string  // figure
	ratio  string
	bold   bool
	failed string
}

type svgGroup struct {
	label string
	bars  []svgBar
}

type svgPanel struct {
	title  string
	unit   string
	lower  bool // lower is better
	groups []svgGroup
}

const (
	svgWidth    = 1240
	svgLabelX   = 16
	svgBarX0    = 250
	svgBarX1    = 820
	svgTextX    = 828
	svgRatioX   = 930
	svgRowH     = 17
	svgGroupH   = 20
	svgTitleH   = 44
	svgPanelGap = 18
)

// WriteSVG writes a chart of the run's figures.
func (rep *Report) WriteSVG(w io.Writer) error {
	panels := rep.svgPanels()
	height := 70
	for _, p := range panels {
		height += svgTitleH - 8 + svgPanelGap
		for _, g := range p.groups {
			height += svgGroupH + len(g.bars)*svgRowH
		}
	}
	height += 40
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica,Arial,sans-serif" font-size="12">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(b, `<text x="%d" y="28" font-size="18" font-weight="bold">QuantumFlow backends vs baselines (%s run, %s)</text>`+"\n", svgLabelX, rep.Mode, rep.Started.Format("2006-01-02"))
	fmt.Fprintf(b, `<text x="%d" y="48" fill="#555">Backends in bold and full colour; baselines pale. Log scales. Ratio = figure ÷ baseline figure.</text>`+"\n", svgLabelX)
	y := 70
	for _, p := range panels {
		y = drawPanel(b, p, y)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555" font-size="11">%s</text>`+"\n", svgLabelX, height-16, html.EscapeString("Machine: "+rep.Machine.Summary()))
	fmt.Fprintf(b, "</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawPanel(b *strings.Builder, p svgPanel, y int) int {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range p.groups {
		for _, bar := range g.bars {
			for _, v := range []float64{bar.value, bar.whisk} {
				if v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi <= dlo {
		dhi = dlo + 1
	}
	x := func(v float64) float64 {
		if v <= 0 {
			return svgBarX0
		}
		f := (math.Log10(v) - dlo) / (dhi - dlo)
		return svgBarX0 + f*(svgBarX1-svgBarX0)
	}
	better := "higher is better"
	if p.lower {
		better = "lower is better"
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", svgLabelX, y+18, html.EscapeString(p.title))
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555">%s, %s</text>`+"\n", svgRatioX, y+18, html.EscapeString(p.unit), better)
	top := y + svgTitleH - 8
	bottom := top
	for _, g := range p.groups {
		bottom += svgGroupH + len(g.bars)*svgRowH
	}
	for d := dlo; d <= dhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			if d == dhi && m > 1 || m > 1 && dhi-dlo > 3 {
				continue
			}
			v := m * math.Pow(10, d)
			xx := x(v)
			stroke := "#e3e3e3"
			if m > 1 {
				stroke = "#f1f1f1"
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", xx, top, xx, bottom, stroke)
			fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="#777" font-size="10" text-anchor="middle">%s</text>`+"\n", xx, top-3, axisLabel(v, p.unit))
		}
	}
	yy := top
	for _, g := range p.groups {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold" fill="#333">%s</text>`+"\n", svgLabelX, yy+15, html.EscapeString(g.label))
		yy += svgGroupH
		for _, bar := range g.bars {
			weight := ""
			if bar.bold {
				weight = ` font-weight="bold"`
			}
			fmt.Fprintf(b, `<text x="%d" y="%d"%s>%s</text>`+"\n", svgLabelX+12, yy+12, weight, html.EscapeString(bar.label))
			if bar.failed != "" {
				fmt.Fprintf(b, `<text x="%d" y="%d" fill="#b00">%s</text>`+"\n", svgBarX0, yy+12, html.EscapeString(truncate(bar.failed, 120)))
				yy += svgRowH
				continue
			}
			x1 := x(bar.value)
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", svgBarX0, yy+2, math.Max(1, x1-svgBarX0), svgRowH-4, bar.color)
			end := x1
			if bar.whisk > 0 {
				x2 := x(bar.whisk)
				fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", x1, yy+svgRowH/2, x2, yy+svgRowH/2)
				fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", x2, yy+4, x2, yy+svgRowH-4)
				end = math.Max(end, x2)
			}
			_ = end
			fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", svgTextX, yy+12, html.EscapeString(bar.text))
			if bar.ratio != "" {
				fmt.Fprintf(b, `<text x="%d" y="%d" fill="#444">%s</text>`+"\n", svgRatioX, yy+12, html.EscapeString(truncate(bar.ratio, 56)))
			}
			yy += svgRowH
		}
	}
	return bottom + svgPanelGap
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func axisLabel(v float64, unit string) string {
	if unit != "msg/s" {
		if v < 1 {
			return fmt.Sprintf("%g ms", v)
		}
		if v >= 1000 {
			return fmt.Sprintf("%g s", v/1000)
		}
		return fmt.Sprintf("%g ms", v)
	}
	return fmtRate(v)
}

// svgPanels turns the results into chart panels.
func (rep *Report) svgPanels() []svgPanel {
	var panels []svgPanel
	label := func(r *Result) string { return r.Case }
	throughput := func(sc, title string) {
		rows := rep.resultsOf(sc)
		if len(rows) == 0 {
			return
		}
		p := svgPanel{title: title, unit: "msg/s"}
		for _, r := range rows {
			gl := label(r)
			if len(p.groups) == 0 || p.groups[len(p.groups)-1].label != gl {
				p.groups = append(p.groups, svgGroup{label: gl})
			}
			g := &p.groups[len(p.groups)-1]
			bar := svgBar{label: r.Subject, color: subjectColor[r.Subject], value: r.Throughput, text: fmtRate(r.Throughput) + " msg/s", bold: r.Kind == KindBackend}
			if r.Scenario == ScenarioBacklog {
				bar.label = fmt.Sprintf("%s, %d pending", r.Subject, r.Pending)
			}
			if r.Error != "" {
				bar.failed = "error: " + r.Error
			} else if r.Kind == KindBackend || r.Subject == SubjectWatermillSQL {
				bar.ratio = compactRatios(r)
			}
			g.bars = append(g.bars, bar)
		}
		panels = append(panels, p)
	}
	latency := func(sc, title string) {
		rows := rep.resultsOf(sc)
		if len(rows) == 0 {
			return
		}
		p := svgPanel{title: title, unit: "ms, bar p50, whisker p99", lower: true}
		for _, r := range rows {
			gl := label(r)
			if len(p.groups) == 0 || p.groups[len(p.groups)-1].label != gl {
				p.groups = append(p.groups, svgGroup{label: gl})
			}
			g := &p.groups[len(p.groups)-1]
			bar := svgBar{label: r.Subject, color: subjectColor[r.Subject], bold: r.Kind == KindBackend}
			if r.Scenario == ScenarioAddressed {
				bar.label = fmt.Sprintf("%s, %s ×%d", r.Subject, r.Delivery, r.Instances)
			}
			switch {
			case r.Latency == nil:
				bar.failed = "error: " + r.Error
			default:
				bar.value, bar.whisk = r.Latency.P50Ms, r.Latency.P99Ms
				bar.text = fmt.Sprintf("%s / %s ms", fmtMs(r.Latency.P50Ms), fmtMs(r.Latency.P99Ms))
				if r.Missing > 0 {
					bar.text += fmt.Sprintf(" (%d missing)", r.Missing)
				}
				if r.Kind == KindBackend {
					bar.ratio = compactRatios(r)
				}
			}
			g.bars = append(g.bars, bar)
		}
		panels = append(panels, p)
	}
	throughput(ScenarioPublish, "Publish, 1 message per call")
	throughput(ScenarioPublishBatch, "Publish, 100 messages per call (4 publishers)")
	throughput(ScenarioConsume, "Consume a preloaded backlog (no-op handler, ack)")
	throughput(ScenarioTypedConsume, "Typed consume: router.Handle decoding vs untyped handler")
	throughput(ScenarioBacklog, "Consume rate vs backlog size")
	latency(ScenarioLatency, "End-to-end latency at fixed rates (from intended send time)")
	latency(ScenarioRoundTrip, "Topology round trip: proposal → CentralCloud → consensus result")
	latency(ScenarioAddressed, "Round trip to the proposer: addressed with N instances vs work queue with one")
	latency(ScenarioBroadcast, "Broadcast fan-out: safety profile until every instance has its copy")
	latency(ScenarioMixed, "Mixed topology: proposal → consensus result round trip under the profile's load")
	return panels
}
