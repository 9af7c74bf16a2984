package cli

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/pubsub"
)

// demoServer is the backend the demo starts when no --url is given.
type demoServer struct {
	srv     *embedded.Server
	dataDir string // "" for a temporary directory
}

// startDemoServer starts the embedded NATS server, keeping its data in
// dataDir when given.
func startDemoServer(ctx context.Context, dataDir string, log *slog.Logger) (*demoServer, error) {
	if !slices.Contains(pubsub.Schemes(), "nats") {
		// Until the NATS backend is compiled in, the in-memory one.
		if dataDir != "" {
			return nil, usageErrorf("--data-dir needs the NATS backend, which this build lacks")
		}
		return &demoServer{}, nil
	}
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dataDir, Logger: log.With("component", "nats-server")})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS server: %w", err)
	}
	return &demoServer{srv: srv, dataDir: dataDir}, nil
}

// demoAckWait is the embedded server's lease on a delivered message. The
// backend renews the lease while a handler runs, so it only matters after a
// crash or a restart: messages that were in flight or waiting for a retry
// when the previous demo stopped come back after it (JetStream keeps the
// delay of a delayed nack in memory only). 5s instead of the default 30s
// keeps a restarted demo quick.
const demoAckWait = "5s"

func (d *demoServer) URL() string {
	if d.srv == nil {
		return "mem://demo"
	}
	return d.srv.ClientURL() + "?ack_wait=" + demoAckWait
}

func (d *demoServer) Embedded() bool { return d.srv != nil }

func (d *demoServer) Describe() string {
	switch {
	case d.srv == nil:
		return "in-memory backend mem://demo"
	case d.dataDir == "":
		return fmt.Sprintf("embedded NATS JetStream server at %s, data in %s (removed at exit; --data-dir keeps it)", d.srv.ClientURL(), d.srv.DataDir())
	default:
		return fmt.Sprintf("embedded NATS JetStream server at %s, data kept in %s", d.srv.ClientURL(), d.srv.DataDir())
	}
}

func (d *demoServer) Close() error {
	if d.srv == nil {
		return nil
	}
	return d.srv.Close()
}
