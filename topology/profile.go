package topology

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Scaling profiles, the seed's "Scaling Guidelines".
const (
	// ProfileSmall is for 1-5 Singularity instances.
	ProfileSmall = "small"
	// ProfileMedium is for 5-20 Singularity instances.
	ProfileMedium = "medium"
	// ProfileLarge is for 20+ Singularity instances.
	ProfileLarge = "large"
)

// profiles holds the seed's Scaling Guidelines verbatim, as the export
// lines it gives: a profile sets exactly what exporting those variables
// would, through the same per-service mapping (envWorkers). Entries the
// guidelines leave out (singularity's safety_profiles consumer,
// centralcloud's consensus_results and safety_profiles producers) keep
// their worker count.
var profiles = map[string][]struct {
	name    string
	workers int
}{
	ProfileSmall: {
		{EnvProposalsWorkers, 1}, {EnvMetricsWorkers, 1}, {EnvPatternsWorkers, 1},
		{EnvConsensusWorkers, 1}, {EnvRollbackWorkers, 1},
	},
	ProfileMedium: {
		{EnvProposalsWorkers, 3}, {EnvMetricsWorkers, 2}, {EnvPatternsWorkers, 2},
		{EnvConsensusWorkers, 2}, {EnvRollbackWorkers, 1},
	},
	ProfileLarge: {
		{EnvProposalsWorkers, 5}, {EnvMetricsWorkers, 4}, {EnvPatternsWorkers, 3},
		{EnvConsensusWorkers, 4}, {EnvRollbackWorkers, 2},
	},
}

// ProfileNames returns the scaling profiles, smallest first.
func ProfileNames() []string { return []string{ProfileSmall, ProfileMedium, ProfileLarge} }

// ProfileEnv returns the seed's export lines of a profile as variable
// name to worker count, or false for an unknown profile.
func ProfileEnv(profile string) (map[string]int, bool) {
	p, ok := profiles[profile]
	if !ok {
		return nil, false
	}
	out := make(map[string]int, len(p))
	for _, v := range p {
		out[v.name] = v.workers
	}
	return out, true
}

// ProfileWorkers returns the worker counts a profile sets for a service,
// by queue name, or false for an unknown service or profile. Queues it
// does not list keep their count.
func ProfileWorkers(service, profile string) (map[string]int, bool) {
	p, ok := profiles[profile]
	if !ok || !slices.Contains(Services(), service) {
		return nil, false
	}
	cfg, _ := Default(service)
	out := map[string]int{}
	for _, v := range p {
		for _, w := range envWorkers {
			if w.service == service && w.name == v.name {
				e, _ := cfg.entry(w.side, w.key)
				out[*e.queue] = v.workers
			}
		}
	}
	return out, true
}

// applyProfile sets the workers of the entries a profile reaches.
func applyProfile(cfg *ServiceConfig, profile string) {
	for _, v := range profiles[profile] {
		for _, w := range envWorkers {
			if w.service == cfg.Name && w.name == v.name {
				if e, ok := cfg.entry(w.side, w.key); ok {
					*e.workers = v.workers
				}
			}
		}
	}
}

// ProfileTableText renders the worker count of every entry of both
// services under the seed's defaults and each profile, as an aligned
// plain-text table for terminals and the package documentation.
func ProfileTableText() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tENTRY\tQUEUE\tSEED\t"+strings.ToUpper(strings.Join(ProfileNames(), "\t")))
	for _, svc := range Services() {
		cfg, _ := Default(svc)
		for _, e := range cfg.entries() {
			row := []string{svc, e.path(), *e.queue, strconv.Itoa(*e.workers)}
			for _, p := range ProfileNames() {
				pw, _ := ProfileWorkers(svc, p)
				n, ok := pw[*e.queue]
				if !ok {
					n = *e.workers
				}
				row = append(row, strconv.Itoa(n))
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	_ = tw.Flush()
	return b.String()
}
