package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/topology"
)

// fanOutTracker records, for each message of a schedule broadcast to n
// instances, when the last instance got its copy: the embedded tracker
// observes a message once its n-th distinct copy arrives, so its latency
// is the time until every instance has the message, and a message with a
// copy missing is missing.
type fanOutTracker struct {
	*tracker
	instances int
	seen      []atomic.Bool  // [seq*instances+instance]
	copies    []atomic.Int32 // distinct copies received, per message
	delivered atomic.Int64   // distinct copies, all messages
	extra     atomic.Int64   // copies an instance had already received
}

func newFanOutTracker(s schedule, instances int) *fanOutTracker {
	return &fanOutTracker{
		tracker:   s.tracker(),
		instances: instances,
		seen:      make([]atomic.Bool, s.n*instances),
		copies:    make([]atomic.Int32, s.n),
	}
}

// observe records instance's copy of the message whose payload is p.
func (t *fanOutTracker) observe(instance int, p []byte) {
	seq, ok := payloadSeq(p)
	if !ok || seq < 0 || seq >= t.n || instance < 0 || instance >= t.instances {
		t.bad.Add(1)
		return
	}
	if !t.seen[int(seq)*t.instances+instance].CompareAndSwap(false, true) {
		t.extra.Add(1)
		return
	}
	t.delivered.Add(1)
	if int(t.copies[seq].Add(1)) == t.instances {
		t.tracker.observe(p)
	}
}

// broadcastFanOut measures broadcast delivery: p.Instances Singularity
// routers (sg-1, sg-2, …) and one CentralCloud router on one backend;
// CentralCloud publishes safety profiles (guardian_safety_profiles_queue,
// broadcast) at p.Rate, and each profile's latency runs from its intended
// send time until the last instance has its copy. Every instance must get
// every profile once: a copy still missing after the drain fails the
// measurement.
func (r *runner) broadcastFanOut(ctx context.Context, def *subjectDef, p Params, res *Result) error {
	inst, err := def.open(ctx, r.env)
	if err != nil {
		return err
	}
	defer inst.close()
	b := inst.backend
	suffix := fmt.Sprintf("_bc%d", r.env.seq.Add(1))
	ccCfg, _ := topology.Default(topology.CentralCloud)
	sgCfg, _ := topology.Default(topology.Singularity)
	ccCfg, sgCfg = withSuffix(ccCfg, suffix), withSuffix(sgCfg, suffix)
	n := max(1, p.Instances)

	probes := newInstanceProbes(n)
	var fo atomic.Pointer[fanOutTracker]
	cc, err := r.newRouter(b, ccCfg, map[string]router.Handler{
		topology.HandleProposalForConsensus: noopHandler,
		topology.HandleExecutionMetrics:     noopHandler,
		topology.HandlePatternDiscovered:    noopHandler,
	})
	if err != nil {
		return err
	}
	profiles, err := cc.Publisher(topology.SafetyProfilesQueue + suffix)
	if err != nil {
		return err
	}
	all := []*router.Router{cc}
	for i := range n {
		cfg := sgCfg
		cfg.InstanceID = instanceName(i)
		sg, err := r.newRouter(b, cfg, map[string]router.Handler{
			topology.HandleConsensusResult: noopHandler,
			topology.HandleRollbackTrigger: noopHandler,
			topology.HandleSafetyProfileUpdate: func(msg *message.Message) error {
				if seq, ok := payloadSeq(msg.Payload); ok && seq == probeSeq {
					probes.mark(i)
				} else if t := fo.Load(); t != nil {
					t.observe(i, msg.Payload)
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		all = append(all, sg)
	}
	// Every instance is registered once its router runs: a profile
	// published from then on is fanned out to all of them.
	g, err := startRouters(ctx, all)
	if err != nil {
		return err
	}
	tmpl, err := payloadTemplate(p.PayloadBytes)
	if err != nil {
		_ = g.stop()
		return err
	}
	publish := func(seq int64) error {
		_, err := profiles.Publish(ctx, newPayload(tmpl, seq))
		return err
	}
	err = awaitProbe(ctx, probes.ready, func() error { return publish(probeSeq) })
	var t *fanOutTracker
	var late string
	if err == nil {
		s := newSchedule(p.Rate, r.sizes.Broadcast.D())
		t = newFanOutTracker(s, n)
		fo.Store(t)
		err = r.runSchedule(ctx, s, t.tracker, publish, res)
		// Copies are counted as the latencies are: within the drain.
		res.Copies = t.delivered.Load()
		late = awaitLateCopies(ctx, t, int64(n))
	}
	if stopErr := g.stop(); err == nil && stopErr != nil {
		err = fmt.Errorf("router shutdown: %w", stopErr)
	}
	if t == nil {
		return err
	}
	res.CopiesExpected = t.n * int64(n)
	res.Duplicates = t.extra.Load()
	res.Ratios = []Ratio{{Baseline: "expected copies", Metric: "delivered", BaselineValue: float64(res.CopiesExpected), Value: float64(res.Copies) / float64(res.CopiesExpected)}}
	if res.Missing > 0 {
		res.Note = fmt.Sprintf("%d of %d profiles had not reached every instance %s after the last send (counted at the time they had waited)", res.Missing, t.n, r.sizes.Drain.D())
	}
	if lost := res.CopiesExpected - res.Copies; lost > 0 {
		err = errors.Join(fmt.Errorf("%d of %d safety profile copies not delivered within %s after the last send%s", lost, res.CopiesExpected, r.sizes.Drain.D(), late), err)
	}
	return err
}

// lateCopiesWait is how long a broadcast run waits for copies missing
// after the drain: past a NATS consumer's ack_wait (30 s), after which a
// message lost on its way to a consumer is delivered again.
const lateCopiesWait = 35 * time.Second

// awaitLateCopies waits, when copies are missing, until they all arrive
// or lateCopiesWait passed, and says which: whether a copy missing after
// the drain came late (and when: about ack_wait points at a delivery lost
// on its way and sent again) or never. "" when none is missing.
func awaitLateCopies(ctx context.Context, t *fanOutTracker, instances int64) string {
	want := t.n * instances
	missing := want - t.delivered.Load()
	if missing <= 0 {
		return ""
	}
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for t.delivered.Load() < want && time.Since(start) < lateCopiesWait {
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
	}
	if got := t.delivered.Load(); got < want {
		return fmt.Sprintf("; %d still missing %s later", want-got, time.Since(start).Round(time.Second))
	}
	return fmt.Sprintf("; the %d came %s later", missing, time.Since(start).Round(100*time.Millisecond))
}
