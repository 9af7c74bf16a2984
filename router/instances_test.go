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
