package httpapi

import (
	"net/http"
	"time"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
)

// DefaultInstanceStaleAfter is how long an instance may go without a
// heartbeat and still be live: three of a router's heartbeats, as the
// routers and `quantumflow instances` count.
const DefaultInstanceStaleAfter = router.DefaultStaleAfter

// InstanceView is a service process of the instance registry as GET
// /api/instances shows it: the fields of `quantumflow instances --json`,
// and how long ago its last heartbeat was.
type InstanceView struct {
	Service string `json:"service"`
	ID      string `json:"id"`
	// State is live (a heartbeat within the stale timeout), stale (none
	// since: stopped or stuck; another process may take its id) or gone
	// (none within the instance TTL: what waits for it is dead-lettered).
	State               string                    `json:"state"`
	Host                string                    `json:"host"`
	PID                 int                       `json:"pid"`
	Version             string                    `json:"version,omitempty"`
	StartedAt           time.Time                 `json:"started_at"`
	HeartbeatAt         time.Time                 `json:"heartbeat_at"`
	HeartbeatAgeSeconds float64                   `json:"heartbeat_age_seconds"`
	Consumers           []pubsub.InstanceConsumer `json:"consumers"`
}

// InstanceList is the answer of GET /api/instances.
type InstanceList struct {
	// Instances are ordered by service, then id.
	Instances         []InstanceView `json:"instances"`
	StaleAfterSeconds float64        `json:"stale_after_seconds"`
	TTLSeconds        float64        `json:"ttl_seconds"`
	At                time.Time      `json:"at"`
}

func (a *api) listInstances(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	all, err := a.opts.Backend.Instances(ctx)
	if err != nil {
		a.backendError(w, err)
		return
	}
	now := time.Now()
	out := InstanceList{
		Instances:         make([]InstanceView, 0, len(all)),
		StaleAfterSeconds: a.opts.InstanceStaleAfter.Seconds(), TTLSeconds: a.opts.InstanceTTL.Seconds(),
		At: now.UTC(),
	}
	for _, i := range all {
		v := InstanceView{
			Service: i.Service, ID: i.ID, State: i.State(now, a.opts.InstanceStaleAfter, a.opts.InstanceTTL),
			Host: i.Host, PID: i.PID, Version: i.Version, StartedAt: i.StartedAt, HeartbeatAt: i.HeartbeatAt,
			HeartbeatAgeSeconds: round2(max(now.Sub(i.HeartbeatAt), 0).Seconds()), Consumers: i.Consumers,
		}
		if v.Consumers == nil {
			v.Consumers = []pubsub.InstanceConsumer{}
		}
		out.Instances = append(out.Instances, v)
	}
	writeJSON(w, http.StatusOK, out)
}
