package cli

import (
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// Upper bounds of the count flags. A count beyond its bound is refused
// (exit 2, naming the flag and the bound) before anything is opened: each
// of these sizes something the tool holds or starts at once, and an
// unbounded one lets a typo exhaust memory instead of failing.
const (
	// MaxWorkers bounds consume --workers: topology.MaxWorkers, the bound
	// of a service's workers, since each is a subscription of its own.
	MaxWorkers = topology.MaxWorkers
	// MaxConsume bounds consume --max. Larger runs are `consume` without
	// --max, stopped by --idle or a signal.
	MaxConsume = 1_000_000
	// MaxPublishCount bounds publish --count: the tool is for messages by
	// hand and smoke tests; loads are the benchmark's
	// (cmd/quantumflow-bench).
	MaxPublishCount = 100_000
	// MaxListLimit bounds pending --limit and dlq list --limit: every
	// message listed, payload included, is held in memory before it is
	// printed.
	MaxListLimit = 10_000
	// MaxIDs bounds how many --id values dlq retry and dlq purge take.
	MaxIDs = 10_000
	// MaxDemoInstances bounds demo --instances: each instance is a router
	// with its own backend connection.
	MaxDemoInstances = 64
	// MaxDemoRounds bounds demo --rounds.
	MaxDemoRounds = 10_000
)

// countLimit is the range of one count flag of one command.
type countLimit struct {
	command  string // the command path without "quantumflow", e.g. "dlq list"
	flag     string
	min, max int
	// slice is for a repeatable flag: its number of values is bounded.
	slice bool
}

// countLimits are every count flag's bounds, checked in one place
// (checkLimits) for every command.
var countLimits = []countLimit{
	{command: "consume", flag: "workers", min: 1, max: MaxWorkers},
	{command: "consume", flag: "max", min: 0, max: MaxConsume},
	{command: "publish", flag: "count", min: 1, max: MaxPublishCount},
	{command: "pending", flag: "limit", min: 1, max: MaxListLimit},
	{command: "dlq list", flag: "limit", min: 1, max: MaxListLimit},
	{command: "dlq retry", flag: "id", max: MaxIDs, slice: true},
	{command: "dlq purge", flag: "id", max: MaxIDs, slice: true},
	{command: "audit", flag: "limit", min: 1, max: pubsub.MaxAuditLimit},
	// The demo checks its own lower bounds.
	{command: "demo", flag: "instances", min: math.MinInt, max: MaxDemoInstances},
	{command: "demo", flag: "rounds", min: math.MinInt, max: MaxDemoRounds},
	{command: "demo", flag: "max-retries", min: math.MinInt, max: topology.MaxRetriesLimit},
}

// checkLimits refuses a count flag of cmd outside its range, naming the
// flag and the bound.
func checkLimits(cmd *cobra.Command) error {
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	for _, l := range countLimits {
		if l.command != path {
			continue
		}
		f := cmd.Flags().Lookup(l.flag)
		if f == nil || !f.Changed {
			continue
		}
		if l.slice {
			vs, err := cmd.Flags().GetStringSlice(l.flag)
			if err == nil && len(vs) > l.max {
				return usageErrorf("--%s given %d times: at most %d (the limit of --%s)", l.flag, len(vs), l.max, l.flag)
			}
			continue
		}
		n, err := cmd.Flags().GetInt(l.flag)
		if err != nil {
			return usageError{err}
		}
		switch {
		case n < l.min && l.min == 1:
			return usageErrorf("--%s must be positive, got %d", l.flag, n)
		case n < l.min:
			return usageErrorf("--%s must be >= %d, got %d", l.flag, l.min, n)
		case n > l.max:
			return usageErrorf("--%s %d: at most %d (the limit of --%s)", l.flag, n, l.max, l.flag)
		}
	}
	return nil
}
