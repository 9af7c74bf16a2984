package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/quantumflow/quantumflow/monitoring/metrics"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
)

var deployDir = filepath.Join("..", "..", "deploy")

// exportedNames returns every series name the code exports, found by
// feeding a Metrics every event kind and a poll and gathering the
// registry: histograms as their _bucket, _count and _sum series.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	ctx := context.Background()
	b, err := pubsub.Open(ctx, "mem://")
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "q"}))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
	require.NoError(t, err)
	md := telemetry.Metadata{telemetry.MetaQueue: "q", telemetry.MetaService: "s", telemetry.MetaHandler: "h"}
	meas := telemetry.Measurements{telemetry.MeasureCount: 1, telemetry.MeasureDuration: 1, telemetry.MeasureLatency: 1}
	for _, e := range append(telemetry.GenericEvents(), telemetry.SeedEvents()...) {
		m.Observe(e, meas, md)
	}
	p, err := metrics.NewPoller(metrics.PollerOptions{Admin: b, Metrics: m})
	require.NoError(t, err)
	_, err = p.Poll(ctx)
	require.NoError(t, err)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				names[mf.GetName()+s] = true
			}
			continue
		}
		names[mf.GetName()] = true
	}
	for _, n := range metrics.Names() {
		if !names[n] && !names[n+"_count"] {
			t.Errorf("metric %s is declared in metrics.Names but not exported", n)
		}
	}
	return names
}

var metricRE = regexp.MustCompile(`\bquantumflow_[a-z_]+\b`)

// requireKnownMetrics fails unless every quantumflow_* name in expr is one
// the code exports.
func requireKnownMetrics(t *testing.T, exported map[string]bool, where, expr string) {
	t.Helper()
	found := metricRE.FindAllString(expr, -1)
	require.NotEmpty(t, found, "%s: no quantumflow metric in %q", where, expr)
	for _, n := range found {
		require.True(t, exported[n], "%s: %s is not a metric the code exports (expr %q)", where, n, expr)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestPrometheusAlerts(t *testing.T) {
	t.Parallel()
	exported := exportedNames(t)
	raw, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	require.NoError(t, err)
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&rf))
	require.Len(t, rf.Groups, 1)

	exprs := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "every rule is an alert")
			require.NotContains(t, exprs, r.Alert, "duplicate alert")
			exprs[r.Alert] = r.Expr
			d, err := time.ParseDuration(r.For)
			require.NoError(t, err, "%s: for", r.Alert)
			require.Positive(t, d, "%s: for", r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s: severity", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: summary", r.Alert)
			require.NotEmpty(t, r.Annotations["description"], "%s: description", r.Alert)
			requireKnownMetrics(t, exported, r.Alert, r.Expr)
		}
	}
	// The three alerts, and what they watch.
	require.Regexp(t, `^quantumflow_dead_letters > 100$`, strings.TrimSpace(exprs["QuantumFlowDeadLettersAboveThreshold"]))
	require.Contains(t, exprs["QuantumFlowOldestPendingMessageTooOld"], metrics.QueueOldestPendingAge)
	require.Contains(t, exprs["QuantumFlowConsumerStalled"], metrics.QueuePending)
	require.Contains(t, exprs["QuantumFlowConsumerStalled"], metrics.HandlerDuration+"_count")
	require.Contains(t, exprs, "QuantumFlowBackendDown")
	require.Contains(t, exprs, "QuantumFlowRollbackTriggersDelayed")
	require.Contains(t, exprs, "QuantumFlowHighFailureRate")
	require.Contains(t, exprs["QuantumFlowInstanceStale"], metrics.Instances+`{state="stale"}`)

	// promtool checks the PromQL and runs alerts_test.yml, which feeds
	// series and asserts each alert fires (and the DLQ one not below 100).
	// It comes with Debian's prometheus package; without it the checks
	// above still hold.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: PromQL syntax and alerts_test.yml not run (apt-get install prometheus)")
		return
	}
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	exported := exportedNames(t)
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana", "quantumflow.json"))
	require.NoError(t, err)
	var dash struct {
		UID           string         `json:"uid"`
		Title         string         `json:"title"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.Equal(t, "quantumflow", dash.UID)
	require.Equal(t, "QuantumFlow", dash.Title)
	require.GreaterOrEqual(t, dash.SchemaVersion, 36)

	vars := map[string]bool{"__rate_interval": true}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		if q, ok := v.Query.(map[string]any); ok {
			requireKnownMetrics(t, exported, "variable "+v.Name, q["query"].(string))
		}
	}
	require.True(t, vars["datasource"] && vars["backend"] && vars["queue"])

	varRE := regexp.MustCompile(`\$\{?([A-Za-z_]+)`)
	ids := map[int]bool{}
	covered := map[string]bool{}
	for _, p := range dash.Panels {
		require.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "%s: wider than the grid", p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Title)
		require.Equal(t, "${datasource}", p.Datasource["uid"], p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			requireKnownMetrics(t, exported, p.Title, tg.Expr)
			for _, m := range varRE.FindAllStringSubmatch(tg.Expr, -1) {
				require.True(t, vars[m[1]], "%s: undefined variable $%s", p.Title, m[1])
			}
			for _, n := range metricRE.FindAllString(tg.Expr, -1) {
				covered[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
			}
		}
	}
	// Everything an operator needs is on the dashboard.
	for _, n := range []string{
		metrics.QueuePending, metrics.QueueInFlight, metrics.QueueScheduled, metrics.QueueDeadLetters,
		metrics.QueueOldestPendingAge, metrics.DeadLetters, metrics.DeadLetterAlert, metrics.BackendUp,
		metrics.MessagesPublished, metrics.MessagesConsumed, metrics.MessagesFailed, metrics.MessagesRetried,
		metrics.MessagesDeadLettered, metrics.HandlerDuration, metrics.EndToEndLatency, metrics.Events,
		metrics.Instances,
	} {
		require.True(t, covered[n], "no panel shows %s", n)
	}
	require.True(t, slices.ContainsFunc(dash.Panels, func(p grafanaPanel) bool { return p.Title == "Dead letters" }))
}
