//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsConfig is the node configuration users run (deploy/nats).
var natsConfig = filepath.Join("..", "deploy", "nats", "nats.conf")

// natsCluster is a three-node JetStream cluster of nats-server processes,
// each started from deploy/nats/nats.conf with its environment, as
// deploy/nats/README.md says.
type natsCluster struct {
	t     *testing.T
	g     *group
	nodes []*natsNode
}

type natsNode struct {
	name                        string
	client, cluster, monitoring int
	proc                        *process
}

// startNATSCluster starts the cluster and waits until it can place
// replicated streams. Ports are picked free, but another process may take
// one before a node binds it: then the cluster starts again on others.
func startNATSCluster(g *group, server string) *natsCluster {
	g.t.Helper()
	for try := 1; ; try++ {
		c, err := tryStartNATSCluster(g, server)
		if err == nil {
			return c
		}
		if try == 3 || !errors.Is(err, errPortTaken) {
			g.t.Fatalf("starting the NATS cluster: %v", err)
		}
		g.t.Logf("starting the NATS cluster: %v; again on other ports", err)
	}
}

var errPortTaken = errors.New("a port was taken")

func tryStartNATSCluster(g *group, server string) (*natsCluster, error) {
	t := g.t
	t.Helper()
	c := &natsCluster{t: t, g: g}
	for i := 1; i <= 3; i++ {
		c.nodes = append(c.nodes, &natsNode{
			name: fmt.Sprintf("nats-%d", i), client: freePort(t), cluster: freePort(t), monitoring: freePort(t),
		})
	}
	routes := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", n.cluster)
	}
	store := workDir(t, "nats")
	for _, n := range c.nodes {
		n.proc = g.add(n.name, server, []string{"-c", natsConfig}, environ(
			"NATS_SERVER_NAME="+n.name,
			"NATS_HOST=127.0.0.1",
			"NATS_PORT="+strconv.Itoa(n.client),
			"NATS_MONITOR_PORT="+strconv.Itoa(n.monitoring),
			"NATS_CLUSTER_PORT="+strconv.Itoa(n.cluster),
			"NATS_ROUTES=["+strings.Join(routes, ", ")+"]",
			"NATS_STORE_DIR="+filepath.Join(store, n.name),
		))
		n.proc.start()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		for _, n := range c.nodes {
			if n.proc.running() {
				continue
			}
			taken := n.proc.logged("address already in use")
			for _, m := range c.nodes {
				m.proc.kill()
			}
			if taken {
				return nil, fmt.Errorf("%s: %w", n.name, errPortTaken)
			}
			return nil, fmt.Errorf("%s exited at start (its log is printed below)", n.name)
		}
		ready, status := c.state()
		if ready {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not ready after a minute: %s", status)
		}
		time.Sleep(pollInterval)
	}
}

// URL returns the URL the services open: every node, three replicas. The
// short ack_wait brings back what a killed service held within seconds.
func (c *natsCluster) URL() string {
	var others []string
	for _, n := range c.nodes[1:] {
		others = append(others, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	return fmt.Sprintf("nats://127.0.0.1:%d?servers=%s&replicas=3&ack_wait=5s", c.nodes[0].client, strings.Join(others, ","))
}

// jsz is the part of a node's /jsz the test reads.
type jsz struct {
	Meta *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// monitorClient keeps no connections: nothing of it outlives the test.
var monitorClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (n *natsNode) get(path string, v any) error {
	resp, err := monitorClient.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.monitoring, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", n.name, path, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// state says whether the running nodes form a cluster that can place
// replicated streams: every one healthy and agreeing on a JetStream meta
// leader, and the leader seeing every other running node current. Before
// that, creating a stream with replicas fails ("no suitable peers for
// placement").
func (c *natsCluster) state() (ready bool, status string) {
	var running []*natsNode
	for _, n := range c.nodes {
		if n.proc.running() {
			running = append(running, n)
		}
	}
	leader := ""
	var leaderInfo jsz
	for _, n := range running {
		if err := n.get("/healthz", nil); err != nil {
			return false, err.Error()
		}
		var info jsz
		if err := n.get("/jsz", &info); err != nil {
			return false, err.Error()
		}
		if info.Meta == nil || info.Meta.Leader == "" {
			return false, n.name + " knows no meta leader"
		}
		if leader != "" && info.Meta.Leader != leader {
			return false, fmt.Sprintf("nodes disagree on the meta leader (%s, %s)", leader, info.Meta.Leader)
		}
		leader = info.Meta.Leader
		if n.name == leader {
			leaderInfo = info
		}
	}
	if leaderInfo.Meta == nil {
		return false, "the meta leader " + leader + " is not a running node"
	}
	for _, n := range running {
		if n.name == leader {
			continue
		}
		found := false
		for _, r := range leaderInfo.Meta.Replicas {
			found = found || r.Name == n.name && r.Current && !r.Offline
		}
		if !found {
			return false, fmt.Sprintf("meta leader %s does not see %s current", leader, n.name)
		}
	}
	if len(running) == len(c.nodes) {
		// Current and online in /jsz is not yet placeable: the meta leader
		// places a stream only on peers whose statistics it has received,
		// which come later (embedded.Cluster's readiness check misses it
		// by up to a few hundred ms). Placing one says it for sure.
		if err := c.placeStream(running); err != nil {
			return false, fmt.Sprintf("a stream with %d replicas cannot be placed yet: %v", len(running), err)
		}
	}
	return true, fmt.Sprintf("%d nodes, meta leader %s", len(running), leader)
}

// placeStream creates and deletes a stream with a replica on every node.
func (c *natsCluster) placeStream(nodes []*natsNode) error {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("e2e readiness probe"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const probe = "E2E_PLACEMENT_PROBE"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: probe, Subjects: []string{"e2e.placement.probe"}, Replicas: len(nodes), Storage: jetstream.MemoryStorage,
	}); err != nil {
		return err
	}
	return js.DeleteStream(ctx, probe)
}

func (c *natsCluster) waitReady() {
	c.t.Helper()
	c.g.waitUntil(time.Minute, "the NATS cluster to be ready", c.state)
}

// leader returns the node that is the JetStream meta leader.
func (c *natsCluster) leader() *natsNode {
	c.t.Helper()
	var info jsz
	for _, n := range c.nodes {
		if n.proc.running() && n.get("/jsz", &info) == nil && info.Meta != nil {
			for _, m := range c.nodes {
				if m.name == info.Meta.Leader {
					return m
				}
			}
		}
	}
	c.t.Fatal("no NATS node knows the meta leader")
	return nil
}

// kill SIGKILLs node n and waits until the others have a meta leader
// again: the cluster works on two nodes.
func (c *natsCluster) kill(n *natsNode) {
	c.t.Helper()
	n.proc.kill()
	c.g.waitUntil(time.Minute, "the NATS cluster to elect a meta leader without "+n.name, c.state)
}

// restart starts node n again (its ports and data kept) and waits until
// the cluster is whole.
func (c *natsCluster) restart(n *natsNode) {
	c.t.Helper()
	n.proc.start()
	c.waitReady()
}
