package router_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// seen records, per instance, the payloads each handler received.
type seen struct {
	mu sync.Mutex
	by map[string][]string // "instance handler" -> payloads
}

func (s *seen) add(instance, handler string, msg *message.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.by == nil {
		s.by = map[string][]string{}
	}
	k := instance + " " + handler
	s.by[k] = append(s.by[k], string(msg.Payload))
}

func (s *seen) get(instance, handler string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.by[instance+" "+handler]...)
}

// TestInstancesGetWhatIsTheirs runs CentralCloud and two Singularity
// instances on one backend: consensus results go back to the proposer, a
// rollback to the instance it names (or all), safety profiles to every
// instance.
func TestInstancesGetWhatIsTheirs(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	var got seen

	var cc *router.Router
	answer := func(msg *message.Message) error {
		pub, err := cc.Publisher(topology.ConsensusQueue)
		if err != nil {
			return err
		}
		_, err = pub.Reply(msg.Context(), msg, []byte("result for "+string(msg.Payload)))
		return err
	}
	var err error
	cc, err = router.New(router.Config{
		Service: service(t, topology.CentralCloud, func(c *topology.ServiceConfig) { c.InstanceID = "cc" }), Backend: b,
		Queues:   []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{topology.HandleProposalForConsensus: answer},
	})
	require.NoError(t, err)
	start(t, cc)

	sgs := map[string]*router.Router{}
	for _, id := range []string{"s1", "s2"} {
		record := func(handler string) router.Handler {
			return func(msg *message.Message) error {
				require.Equal(t, id, router.InstanceOf(msg))
				got.add(id, handler, msg)
				return nil
			}
		}
		r, err := router.New(router.Config{
			Service: service(t, topology.Singularity, func(c *topology.ServiceConfig) { c.InstanceID = id }), Backend: b,
			Handlers: map[string]router.Handler{
				topology.HandleConsensusResult:     record("result"),
				topology.HandleRollbackTrigger:     record("rollback"),
				topology.HandleSafetyProfileUpdate: record("profile"),
			},
		})
		require.NoError(t, err)
		start(t, r)
		sgs[id] = r
	}

	ctx := context.Background()
	for id, r := range sgs {
		pub, err := r.Publisher(topology.ProposalsQueue)
		require.NoError(t, err)
		for i := range 5 {
			_, err := pub.Publish(ctx, []byte(fmt.Sprintf("%s-p%d", id, i)))
			require.NoError(t, err)
		}
	}
	rollbacks, err := cc.Publisher(topology.RollbackQueue)
	require.NoError(t, err)
	_, err = rollbacks.Publish(ctx, []byte("undo on s2"), router.To("s2"))
	require.NoError(t, err)
	_, err = rollbacks.Publish(ctx, []byte("undo everywhere"), router.To(pubsub.InstanceAll))
	require.NoError(t, err)
	_, err = rollbacks.Publish(ctx, []byte("nobody named"))
	require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "an addressed queue needs a target")
	profiles, err := cc.Publisher(topology.SafetyProfilesQueue)
	require.NoError(t, err)
	_, err = profiles.Publish(ctx, []byte("profile v1"))
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		return len(got.get("s1", "result")) == 5 && len(got.get("s2", "result")) == 5 &&
			len(got.get("s1", "profile")) == 1 && len(got.get("s2", "profile")) == 1 &&
			len(got.get("s1", "rollback")) == 1 && len(got.get("s2", "rollback")) == 2
	}, waitFor, 5*time.Millisecond)
	for _, id := range []string{"s1", "s2"} {
		for _, r := range got.get(id, "result") {
			require.Regexp(t, "^result for "+id+"-p", r, "%s got a result for another instance's proposal", id)
		}
	}
	require.Equal(t, []string{"undo everywhere"}, got.get("s1", "rollback"))
	require.ElementsMatch(t, []string{"undo on s2", "undo everywhere"}, got.get("s2", "rollback"))

	insts, err := b.Instances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 3, "cc, s1 and s2 are registered")
}

// TestDuplicateInstanceIDRefused checks that a second live router under
// the same service and instance id does not start.
func TestDuplicateInstanceIDRefused(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cfg := service(t, topology.Singularity, func(c *topology.ServiceConfig) { c.InstanceID = "twin" })
	newRouter := func() *router.Router {
		r, err := router.New(router.Config{Service: cfg, Backend: b, Handlers: map[string]router.Handler{
			topology.HandleConsensusResult: ok, topology.HandleRollbackTrigger: ok, topology.HandleSafetyProfileUpdate: ok,
		}})
		require.NoError(t, err)
		return r
	}
	start(t, newRouter())
	err := newRouter().Run(context.Background())
	require.ErrorIs(t, err, pubsub.ErrInstanceTaken)
	require.ErrorContains(t, err, "twin")
}

// TestLateInstanceGetsLatestProfile checks broadcast replay: an instance
// that joins after a profile was broadcast receives the latest one.
func TestLateInstanceGetsLatestProfile(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	cc, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, nil), Backend: b, Queues: []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: ok},
	})
	require.NoError(t, err)
	profiles, err := cc.Publisher(topology.SafetyProfilesQueue)
	require.NoError(t, err)
	for _, v := range []string{"v1", "v2"} {
		_, err = profiles.Publish(context.Background(), []byte(v))
		require.NoError(t, err)
	}
	var got seen
	r, err := router.New(router.Config{
		Service: service(t, topology.Singularity, func(c *topology.ServiceConfig) { c.InstanceID = "late" }), Backend: b,
		Queues: []string{topology.SafetyProfilesQueue},
		Handlers: map[string]router.Handler{topology.HandleSafetyProfileUpdate: func(msg *message.Message) error {
			got.add("late", "profile", msg)
			return nil
		}},
	})
	require.NoError(t, err)
	start(t, r)
	require.Eventually(t, func() bool { return len(got.get("late", "profile")) == 1 }, waitFor, 5*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, []string{"v2"}, got.get("late", "profile"), "the latest only")
}

// TestRestartAfterKillTakesTheIDOver checks that a process restarted on
// the same host after being killed (its record still fresh, its pid gone)
// gets its instance id back, while a live one keeps it.
func TestRestartAfterKillTakesTheIDOver(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	host, _ := os.Hostname()
	killed := &pubsub.Instance{Service: topology.Singularity, ID: "phoenix", Host: host, PID: dead.ProcessState.Pid(), Nonce: "killed"}
	require.NoError(t, b.RegisterInstance(context.Background(), killed, time.Hour))

	cfg := service(t, topology.Singularity, func(c *topology.ServiceConfig) { c.InstanceID = "phoenix" })
	r, err := router.New(router.Config{Service: cfg, Backend: b, Handlers: map[string]router.Handler{
		topology.HandleConsensusResult: ok, topology.HandleRollbackTrigger: ok, topology.HandleSafetyProfileUpdate: ok,
	}})
	require.NoError(t, err)
	start(t, r)
	insts, err := b.Instances(context.Background())
	require.NoError(t, err)
	require.Len(t, insts, 1)
	require.Equal(t, os.Getpid(), insts[0].PID, "the restarted process holds the id")
}

// gone is a Singularity instance whose process died without
// deregistering: one heartbeat, at registration, and none after.
func gone(t *testing.T, b *pubsub.Backend, id string) time.Time {
	t.Helper()
	inst := &pubsub.Instance{Service: topology.Singularity, ID: id, Host: "elsewhere", PID: 1, Nonce: "crashed"}
	require.NoError(t, b.RegisterInstance(context.Background(), inst, time.Hour))
	return inst.HeartbeatAt
}

// sweeper starts a CentralCloud router whose instance_ttl and
// broadcast_retention come from its service configuration, with
// heartbeats (and so sweeps) every 10ms.
func sweeper(t *testing.T, b *pubsub.Backend, bus *telemetry.Bus, ttl, retention time.Duration) *router.Router {
	t.Helper()
	cc, err := router.New(router.Config{
		Service: service(t, topology.CentralCloud, func(c *topology.ServiceConfig) {
			c.InstanceID, c.InstanceTTL, c.BroadcastRetention = "cc", ttl, retention
		}),
		Backend: b, Telemetry: bus, Heartbeat: 10 * time.Millisecond,
		Queues:   []string{topology.PatternsQueue},
		Handlers: map[string]router.Handler{topology.HandlePatternDiscovered: ok},
	})
	require.NoError(t, err)
	start(t, cc)
	return cc
}

// deadFor returns the dead letters of instance's queue of queue.
func deadFor(t *testing.T, b *pubsub.Backend, instance, queue string) []pubsub.DeadLetter {
	t.Helper()
	return deadLetters(t, b, pubsub.InstanceQueue(queue, instance))
}

// copiesTo counts the copies of queue published to instance, by the
// publishers' message_published events.
func copiesTo(rec *recorder, queue, instance string) int {
	n := 0
	for _, e := range rec.named(telemetry.MessagePublished.Name()) {
		if e.md[telemetry.MetaQueue] == queue && e.md[telemetry.MetaInstance] == instance {
			n++
		}
	}
	return n
}

// TestGoneInstanceBroadcastRetention checks the two waits of an instance
// that stopped heartbeating, both from the service configuration: what
// is addressed to it is dead-lettered "instance gone" after instance_ttl,
// while its copies of broadcast messages wait for it until
// broadcast_retention, and broadcasts keep going to it until then.
func TestGoneInstanceBroadcastRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const down = "s-down"

	t.Run("PastTTLWithinRetention", func(t *testing.T) {
		t.Parallel()
		const ttl = 100 * time.Millisecond
		b := openBackend(t)
		bus, rec := listen(t)
		heartbeat := gone(t, b, down)
		cc := sweeper(t, b, bus, ttl, time.Hour)
		rollbacks, err := cc.Publisher(topology.RollbackQueue)
		require.NoError(t, err)
		results, err := cc.Publisher(topology.ConsensusQueue)
		require.NoError(t, err)
		profiles, err := cc.Publisher(topology.SafetyProfilesQueue)
		require.NoError(t, err)

		_, err = rollbacks.Publish(ctx, []byte("undo"), router.To(down))
		require.NoError(t, err)
		_, err = profiles.Publish(ctx, []byte("profile v1"))
		require.NoError(t, err)
		require.Equal(t, 1, copiesTo(rec, topology.SafetyProfilesQueue, down))

		require.Eventually(t, func() bool { return len(deadFor(t, b, down, topology.RollbackQueue)) == 1 }, waitFor, 5*time.Millisecond)
		dl := deadFor(t, b, down, topology.RollbackQueue)[0]
		require.Equal(t, pubsub.ReasonInstanceGone, dl.Error)
		require.GreaterOrEqual(t, dl.CreatedAt.Sub(heartbeat), ttl, "not before instance_ttl")

		// A sweep dead-letters consensus_results_queue before
		// rollback_triggers_queue, and addressed queues before broadcast
		// ones: a result dead-lettered now went in a later sweep than the
		// rollback, so the sweep that found the instance gone has been
		// through the broadcast queue too.
		_, err = results.Publish(ctx, []byte("result"), router.To(down))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(deadFor(t, b, down, topology.ConsensusQueue)) == 1 }, waitFor, 5*time.Millisecond)
		require.Empty(t, deadFor(t, b, down, topology.SafetyProfilesQueue), "a broadcast copy waits for broadcast_retention")
		st, err := b.Stats(ctx, pubsub.InstanceQueue(topology.SafetyProfilesQueue, down))
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Pending)

		// Past instance_ttl, within broadcast_retention: broadcasts still
		// reach it, a message addressed to all no longer does.
		_, err = profiles.Publish(ctx, []byte("profile v2"))
		require.NoError(t, err)
		require.Equal(t, 2, copiesTo(rec, topology.SafetyProfilesQueue, down))
		_, err = rollbacks.Publish(ctx, []byte("undo everywhere"), router.To(pubsub.InstanceAll))
		require.NoError(t, err)
		require.Equal(t, 1, copiesTo(rec, topology.RollbackQueue, down), "only the rollback addressed to it by name")
	})

	t.Run("PastRetention", func(t *testing.T) {
		t.Parallel()
		const ttl, retention = 60 * time.Millisecond, 300 * time.Millisecond
		b := openBackend(t)
		bus, rec := listen(t)
		heartbeat := gone(t, b, down)
		cc := sweeper(t, b, bus, ttl, retention)
		profiles, err := cc.Publisher(topology.SafetyProfilesQueue)
		require.NoError(t, err)
		_, err = profiles.Publish(ctx, []byte("profile v1"))
		require.NoError(t, err)
		require.Equal(t, 1, copiesTo(rec, topology.SafetyProfilesQueue, down))

		require.Eventually(t, func() bool { return len(deadFor(t, b, down, topology.SafetyProfilesQueue)) == 1 }, waitFor, 5*time.Millisecond)
		dl := deadFor(t, b, down, topology.SafetyProfilesQueue)[0]
		require.Equal(t, pubsub.ReasonInstanceGone, dl.Error)
		require.Equal(t, "profile v1", string(dl.Payload))
		require.GreaterOrEqual(t, dl.CreatedAt.Sub(heartbeat), retention, "not before broadcast_retention")

		_, err = profiles.Publish(ctx, []byte("profile v2"))
		require.NoError(t, err)
		require.Equal(t, 1, copiesTo(rec, topology.SafetyProfilesQueue, down), "past broadcast_retention a broadcast skips it")
	})
}

// TestInstanceWaitsFromConfig checks where a router takes instance_ttl
// and broadcast_retention from, and that neither may be shorter than
// three heartbeats.
func TestInstanceWaitsFromConfig(t *testing.T) {
	t.Parallel()
	b := openBackend(t)
	newRouter := func(cfg router.Config) error {
		cfg.Backend = b
		cfg.Queues = []string{topology.PatternsQueue}
		cfg.Handlers = map[string]router.Handler{topology.HandlePatternDiscovered: ok}
		_, err := router.New(cfg)
		return err
	}
	short := service(t, topology.CentralCloud, func(c *topology.ServiceConfig) { c.InstanceTTL = 10 * time.Second })
	err := newRouter(router.Config{Service: short})
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
	require.EqualError(t, err, "router centralcloud: invalid configuration: instance_ttl=10s is shorter than three heartbeats (15s): a live instance would count as gone")
	require.NoError(t, newRouter(router.Config{Service: short, Heartbeat: time.Second}))
	require.NoError(t, newRouter(router.Config{Service: short, InstanceTTL: time.Hour}), "Config.InstanceTTL overrides instance_ttl")

	err = newRouter(router.Config{Service: service(t, topology.CentralCloud, nil), BroadcastRetention: time.Second})
	require.EqualError(t, err, "router centralcloud: invalid configuration: Config.BroadcastRetention=1s is shorter than three heartbeats (15s): a live instance would count as gone")
	hand := service(t, topology.CentralCloud, func(c *topology.ServiceConfig) { c.InstanceTTL, c.BroadcastRetention = 0, 0 })
	require.NoError(t, newRouter(router.Config{Service: hand}), "zero is the default")
}
