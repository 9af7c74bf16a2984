package embedded

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers in this process, on
// loopback. It exists for tests: replicated streams, a node stopped and
// restarted while clients keep working.
type Cluster struct {
	opts    Options
	dataDir string
	tempDir bool

	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	name       string
	clientPort int
	routePort  int
	dataDir    string
	ns         *server.Server // nil while stopped
}

// StartCluster starts n servers (n >= 1) as one JetStream cluster and
// waits until it is ready (see WaitReady). Each node
// keeps its client and route ports and its data directory (a subdirectory
// of opts.DataDir, or of a temporary directory) for its whole life, so a
// stopped node restarts where it was. opts.Port is ignored.
func StartCluster(ctx context.Context, n int, opts Options) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("embedded nats: cluster size must be >= 1, got %d", n)
	}
	dataDir, temp, err := dataDirOf(opts.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, dataDir: dataDir, tempDir: temp}
	for i := range n {
		cp, err := freePort()
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		rp, err := freePort()
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		name := "qf-n" + strconv.Itoa(i+1)
		c.nodes = append(c.nodes, &clusterNode{
			name: name, clientPort: cp, routePort: rp, dataDir: filepath.Join(dataDir, name),
		})
	}
	// Start all nodes concurrently: a JetStream node waits for its peers
	// before it reports ready.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { errs[i] = c.start(ctx, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.WaitReady(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) nodeOptions(i int) *server.Options {
	node := c.nodes[i]
	o := baseOptions(Options{Port: node.clientPort, SyncAlways: c.opts.SyncAlways}, node.dataDir)
	o.ServerName = node.name
	o.Cluster = server.ClusterOpts{Name: "quantumflow", Host: "127.0.0.1", Port: node.routePort}
	for j, other := range c.nodes {
		if j != i {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(other.routePort)})
		}
	}
	if c.opts.Configure != nil {
		c.opts.Configure(o)
	}
	return o
}

func (c *Cluster) start(ctx context.Context, i int) error {
	c.mu.Lock()
	o := c.nodeOptions(i)
	c.mu.Unlock()
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return fmt.Errorf("embedded nats: node %d data dir: %w", i, err)
	}
	var logger = c.opts.Logger
	if logger != nil {
		logger = logger.With("node", c.nodes[i].name)
	}
	ns, err := startServer(ctx, o, logger)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.nodes[i].name, err)
	}
	c.mu.Lock()
	c.nodes[i].ns = ns
	c.mu.Unlock()
	return nil
}

// Size returns the number of nodes, running or stopped.
func (c *Cluster) Size() int { return len(c.nodes) }

// ClientURLs returns every node's client URL, stopped nodes included (a
// node keeps its port across restarts).
func (c *Cluster) ClientURLs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = "nats://127.0.0.1:" + strconv.Itoa(n.clientPort)
	}
	return out
}

// NATSServer returns node i's server, or nil while it is stopped.
func (c *Cluster) NATSServer(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].ns
}

// StopNode shuts node i down, as a crash would look to its peers and
// clients (its files stay). Stopping a stopped node does nothing.
func (c *Cluster) StopNode(i int) error {
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("embedded nats: no node %d in a cluster of %d", i, len(c.nodes))
	}
	c.mu.Lock()
	ns := c.nodes[i].ns
	c.nodes[i].ns = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	return nil
}

// RestartNode starts a stopped node i again on its ports and data
// directory and waits until the cluster is ready again (see WaitReady).
func (c *Cluster) RestartNode(ctx context.Context, i int) error {
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("embedded nats: no node %d in a cluster of %d", i, len(c.nodes))
	}
	if c.NATSServer(i) != nil {
		return fmt.Errorf("embedded nats: node %d is running", i)
	}
	if err := c.start(ctx, i); err != nil {
		return err
	}
	return c.WaitReady(ctx)
}

// WaitReady waits until the running nodes are routed to each other, one
// of them is the JetStream meta leader, every one is current, and a
// stream with a replica on each of them can be placed: it creates and
// deletes such a stream (named qf-embedded-placement-probe). The meta
// leader reports a peer current in /jsz before it places streams on it
// (it waits for the peer's statistics), and in between creating a
// replicated stream fails with "no suitable peers for placement".
func (c *Cluster) WaitReady(ctx context.Context) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		running, current := c.current()
		if current {
			last = c.placeProbe(ctx, running)
			if last == nil {
				return nil
			}
			if errors.Is(last, errProbeRefused) {
				return fmt.Errorf("embedded nats: cluster readiness: %w", last)
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("embedded nats: cluster not ready: %w (a stream with a replica on each of the %d nodes running cannot be placed: %v)", ctx.Err(), len(running), last)
			}
			return fmt.Errorf("embedded nats: cluster not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// errProbeRefused: the nodes refuse the probe's plain, unauthenticated
// connection (Options.Configure required TLS or authentication), so the
// cluster's readiness cannot be seen.
var errProbeRefused = errors.New("the nodes refuse the placement probe's connection (plain, without credentials)")

// placementProbe is the stream WaitReady places to see that the cluster
// can place one on every running node.
const placementProbe = "qf-embedded-placement-probe"

// placeProbe creates a stream with a replica on each running node and
// deletes it again.
func (c *Cluster) placeProbe(ctx context.Context, running []*server.Server) error {
	if len(running) < 2 {
		return nil // nothing to place across
	}
	urls := make([]string, len(running))
	for i, ns := range running {
		urls[i] = ns.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("embedded cluster readiness probe"))
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrSecureConnRequired) {
		return fmt.Errorf("%w: %w", errProbeRefused, err)
	}
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(pctx, jetstream.StreamConfig{
		Name:     placementProbe,
		Subjects: []string{"qf-embedded.placement-probe"},
		Storage:  jetstream.MemoryStorage,
		Replicas: len(running),
	}); err != nil {
		return err
	}
	return js.DeleteStream(pctx, placementProbe)
}

// current returns the running nodes and whether they are routed to each
// other, agree on a meta leader, and the leader sees every one current.
func (c *Cluster) current() ([]*server.Server, bool) {
	c.mu.Lock()
	var running []*server.Server
	for _, n := range c.nodes {
		if n.ns != nil {
			running = append(running, n.ns)
		}
	}
	c.mu.Unlock()
	return running, c.routedAndCurrent(running)
}

func (c *Cluster) routedAndCurrent(running []*server.Server) bool {
	var leader *server.Server
	for _, ns := range running {
		if ns.NumRoutes() < len(running)-1 || !ns.JetStreamIsCurrent() {
			return false
		}
		if ns.JetStreamIsLeader() {
			leader = ns
		}
	}
	if len(c.nodes) == 1 {
		return true
	}
	if leader == nil {
		return false
	}
	// The leader places streams only on peers it sees online and current
	// (and, later still, whose statistics it has: WaitReady's probe).
	info, err := leader.Jsz(&server.JSzOptions{})
	if err != nil || info.Meta == nil {
		return false
	}
	seen := map[string]bool{}
	for _, p := range info.Meta.Replicas {
		seen[p.Name] = p.Current && !p.Offline
	}
	for _, ns := range running {
		if ns != leader && !seen[ns.Name()] {
			return false
		}
	}
	return true
}

// Close stops every node and removes a temporary data directory.
func (c *Cluster) Close() error {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { _ = c.StopNode(i) })
	}
	wg.Wait()
	if c.tempDir {
		c.tempDir = false
		if err := os.RemoveAll(c.dataDir); err != nil {
			return fmt.Errorf("embedded nats: remove temp data dir: %w", err)
		}
	}
	return nil
}
