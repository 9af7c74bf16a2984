package reliability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
)

// ScenarioCluster is the three-node NATS cluster scenario.
const ScenarioCluster = "nats_cluster"

// clusterScenario runs the flow on a three-node JetStream cluster with
// replicas=3, and kills the proposals stream's leader, then a follower,
// then the whole cluster, each time starting what it stopped again.
func clusterScenario(ctx context.Context, r *run) error {
	n, rate := pick(r, 20_000, 2_000), pick(r, 300.0, 200.0)
	down := pick(r, 10*time.Second, 2*time.Second)
	c, err := embedded.StartCluster(ctx, 3, embedded.Options{Logger: r.cfg.Logger})
	if err != nil {
		return fmt.Errorf("three-node cluster: %w", err)
	}
	defer c.Close()
	urls := c.ClientURLs()
	u := withParams(urls[0], "servers", strings.Join(urls[1:], ","), "replicas", "3", "ack_wait", "5s")
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10) on a three-node JetStream cluster, replicas=3, lease 5s: the proposals stream's leader stopped for %s and started again, then a follower, then all three nodes at once", n, rate, down)
	var steps []string
	_, err = r.underLoad(ctx, u, load{To: n, Batch: 10, Workers: 8, Rate: rate}, pick(r, 5*time.Second, time.Second), func(ctx context.Context, f *flow) error {
		stream := "QF_" + strings.ReplaceAll(f.queues[0], ".", "=")
		leader := -1
		for i := range c.Size() {
			if s := c.NATSServer(i); s != nil && s.JetStreamIsStreamLeader("$G", stream) {
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no node leads stream %s", stream)
		}
		follower := (leader + 1) % c.Size()
		for _, step := range []struct {
			what  string
			nodes []int
		}{{"leader", []int{leader}}, {"follower", []int{follower}}, {"whole cluster", []int{0, 1, 2}}} {
			began := time.Now()
			r.logf("stopping the %s (nodes %v)", step.what, step.nodes)
			if err := cycleNodes(ctx, c, step.nodes, down); err != nil {
				return fmt.Errorf("%s: %w", step.what, err)
			}
			steps = append(steps, fmt.Sprintf("%s %s", step.what, time.Since(began).Round(100*time.Millisecond)))
		}
		return nil
	})
	r.res.figure("stopped until ready again", "%s", strings.Join(steps, ", "))
	return err
}

// cycleNodes stops nodes, waits down, and starts them again at once (a
// node of a whole cluster restarted waits for a quorum of the others).
func cycleNodes(ctx context.Context, c *embedded.Cluster, nodes []int, down time.Duration) error {
	for _, i := range nodes {
		if err := c.StopNode(i); err != nil {
			return err
		}
	}
	if err := sleep(ctx, down); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for k, i := range nodes {
		wg.Go(func() { errs[k] = c.RestartNode(rctx, i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
