package topology

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Environment variables, with the seed's exact names.
const (
	EnvDatabaseURL             = "QUANTUM_FLOW_DATABASE_URL"
	EnvProposalsWorkers        = "QUANTUM_FLOW_PROPOSALS_WORKERS"
	EnvMetricsWorkers          = "QUANTUM_FLOW_METRICS_WORKERS"
	EnvPatternsWorkers         = "QUANTUM_FLOW_PATTERNS_WORKERS"
	EnvConsensusWorkers        = "QUANTUM_FLOW_CONSENSUS_WORKERS"
	EnvRollbackWorkers         = "QUANTUM_FLOW_ROLLBACK_WORKERS"
	EnvSafetyWorkers           = "QUANTUM_FLOW_SAFETY_WORKERS"
	EnvConsensusResultsWorkers = "QUANTUM_FLOW_CONSENSUS_RESULTS_WORKERS"
	EnvProfileWorkers          = "QUANTUM_FLOW_PROFILE_WORKERS"
	EnvMaxRetries              = "QUANTUM_FLOW_MAX_RETRIES"
	EnvRetryDelayMS            = "QUANTUM_FLOW_RETRY_DELAY_MS"
	// EnvMessagingURL sets messaging_url, the backend both services'
	// queues are on. Ours, not the seed's.
	EnvMessagingURL = "QUANTUM_FLOW_MESSAGING_URL"
	// EnvInstanceID sets instance_id, this process's id among its
	// service's instances. Ours, not the seed's.
	EnvInstanceID = "QUANTUM_FLOW_INSTANCE_ID"
	// EnvInstanceTTL sets instance_ttl, a Go duration ("24h"). Ours.
	EnvInstanceTTL = "QUANTUM_FLOW_INSTANCE_TTL"
	// EnvBroadcastRetention sets broadcast_retention, a Go duration
	// ("168h"). Ours.
	EnvBroadcastRetention = "QUANTUM_FLOW_BROADCAST_RETENTION"
	// EnvProfile selects a scaling profile. It is ours, not the seed's;
	// not to be confused with EnvProfileWorkers, the seed's worker count of
	// CentralCloud's safety-profile producer.
	EnvProfile = "QUANTUM_FLOW_PROFILE"
)

// Sides of an entry.
const (
	SideProducer = "producer"
	SideConsumer = "consumer"
)

// Settings an environment variable sets.
const (
	SettingDatabaseURL        = "database_url"
	SettingMessagingURL       = "messaging_url"
	SettingInstanceID         = "instance_id"
	SettingInstanceTTL        = "instance_ttl"
	SettingBroadcastRetention = "broadcast_retention"
	SettingWorkers            = "workers"
	SettingMaxRetries         = "max_retries"
	SettingRetryDelayMS       = "retry_delay_ms"
	SettingProfile            = "profile"
)

// EnvVar is one row of the environment table: which variable sets what
// for which service.
type EnvVar struct {
	// Name is the variable, e.g. "QUANTUM_FLOW_PROPOSALS_WORKERS".
	Name string `json:"name"`
	// Service is the service that reads it.
	Service string `json:"service"`
	// Setting is what it sets: database_url, messaging_url, instance_id,
	// instance_ttl, broadcast_retention, workers, max_retries,
	// retry_delay_ms or profile.
	Setting string `json:"setting"`
	// Side is "producer" or "consumer" for a workers variable, "" for a
	// service-wide one.
	Side string `json:"side,omitempty"`
	// Entry is the seed's key of the entry a workers variable sets, e.g.
	// "proposals_for_consensus"; "" for a service-wide one.
	Entry string `json:"entry,omitempty"`
	// Queue is the queue of that entry; "" for a service-wide one.
	Queue string `json:"queue,omitempty"`
	// Default is the seed's value, as text; "" when there is none, and in
	// parentheses where the default is not a fixed value:
	// "(database_url)" for messaging_url, "(host name)" for instance_id.
	Default string `json:"default"`
}

// envWorkers maps each workers variable to the entry the seed's config
// applies it to, per service, in the seed's order. The seed reuses
// PROPOSALS, METRICS, PATTERNS and ROLLBACK on both sides of a queue with
// different defaults: each service reads the variable for its own side.
var envWorkers = []struct {
	service, name, side, key string
}{
	{Singularity, EnvProposalsWorkers, SideProducer, "proposals_for_consensus"},
	{Singularity, EnvMetricsWorkers, SideProducer, "metrics_to_guardian"},
	{Singularity, EnvPatternsWorkers, SideProducer, "patterns_for_aggregator"},
	{Singularity, EnvConsensusWorkers, SideConsumer, "consensus_results"},
	{Singularity, EnvRollbackWorkers, SideConsumer, "rollback_triggers"},
	{Singularity, EnvSafetyWorkers, SideConsumer, "safety_profiles"},
	{CentralCloud, EnvConsensusResultsWorkers, SideProducer, "consensus_results"},
	{CentralCloud, EnvRollbackWorkers, SideProducer, "rollback_triggers"},
	{CentralCloud, EnvProfileWorkers, SideProducer, "safety_profiles"},
	{CentralCloud, EnvProposalsWorkers, SideConsumer, "proposals"},
	{CentralCloud, EnvMetricsWorkers, SideConsumer, "metrics"},
	{CentralCloud, EnvPatternsWorkers, SideConsumer, "patterns"},
}

// EnvTable returns every environment variable each service reads, with
// what it sets and the seed's default, service by service in the seed's
// order. `quantumflow config show` and the README print it.
func EnvTable() []EnvVar {
	var out []EnvVar
	for _, svc := range Services() {
		cfg, _ := Default(svc)
		out = append(out,
			EnvVar{Name: EnvDatabaseURL, Service: svc, Setting: SettingDatabaseURL, Default: cfg.DatabaseURL},
			EnvVar{Name: EnvMessagingURL, Service: svc, Setting: SettingMessagingURL, Default: "(" + SettingDatabaseURL + ")"},
			EnvVar{Name: EnvInstanceID, Service: svc, Setting: SettingInstanceID, Default: "(host name)"},
			EnvVar{Name: EnvInstanceTTL, Service: svc, Setting: SettingInstanceTTL, Default: formatDuration(cfg.InstanceTTL)},
			EnvVar{Name: EnvBroadcastRetention, Service: svc, Setting: SettingBroadcastRetention, Default: formatDuration(cfg.BroadcastRetention)},
		)
		for _, w := range envWorkers {
			if w.service != svc {
				continue
			}
			e, _ := cfg.entry(w.side, w.key)
			out = append(out, EnvVar{
				Name: w.name, Service: svc, Setting: SettingWorkers, Side: w.side, Entry: w.key,
				Queue: *e.queue, Default: strconv.Itoa(*e.workers),
			})
		}
		out = append(out,
			EnvVar{Name: EnvMaxRetries, Service: svc, Setting: SettingMaxRetries, Default: strconv.Itoa(DefaultMaxRetries)},
			EnvVar{Name: EnvRetryDelayMS, Service: svc, Setting: SettingRetryDelayMS, Default: strconv.FormatInt(DefaultRetryDelay.Milliseconds(), 10)},
			EnvVar{Name: EnvProfile, Service: svc, Setting: SettingProfile},
		)
	}
	return out
}

// EnvTableMarkdown renders EnvTable as a Markdown table for the README
// (the package documentation holds the same table).
func EnvTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | service | sets | side | entry (queue) | seed default |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, v := range EnvTable() {
		entry, side, def := "all entries", v.Side, v.Default
		switch v.Setting {
		case SettingWorkers:
			entry = fmt.Sprintf("%s (%s)", v.Entry, v.Queue)
		case SettingDatabaseURL, SettingMessagingURL, SettingInstanceID, SettingInstanceTTL, SettingBroadcastRetention, SettingProfile:
			entry = "-"
		}
		if side == "" {
			side = "-"
		}
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", v.Name, v.Service, v.Setting, side, entry, def)
	}
	return b.String()
}

// EnvTableText renders EnvTable as an aligned plain-text table, for
// terminals and the package documentation.
func EnvTableText() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tSERVICE\tSETS\tDEFAULT")
	for _, v := range EnvTable() {
		sets, def := v.Setting, v.Default
		switch v.Setting {
		case SettingWorkers:
			sets = fmt.Sprintf("workers of %s %s", v.Side, v.Queue)
		case SettingMaxRetries, SettingRetryDelayMS:
			sets += " of every entry"
		}
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Service, sets, def)
	}
	_ = tw.Flush()
	return b.String()
}
