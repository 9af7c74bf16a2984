package demo

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
)

// server is the embedded NATS JetStream server a run starts when
// Options.URL is empty.
type server struct {
	srv     *embedded.Server
	dataDir string // "" for a temporary directory
}

// startServer starts the embedded NATS server, keeping its data in dataDir
// when given.
func startServer(ctx context.Context, dataDir string, log *slog.Logger) (*server, error) {
	srv, err := embedded.Start(ctx, embedded.Options{DataDir: dataDir, Logger: log.With("component", "nats-server")})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS server: %w", err)
	}
	return &server{srv: srv, dataDir: dataDir}, nil
}

// ackWait is the embedded server's lease on a delivered message. The
// backend renews the lease while a handler runs, so it only matters after a
// crash or a restart: messages that were in flight or waiting for a retry
// when the previous demo stopped come back after it (JetStream keeps the
// delay of a delayed nack in memory only). 5s instead of the default 30s
// keeps a restarted demo quick.
const ackWait = "5s"

func (s *server) URL() string { return s.srv.ClientURL() + "?ack_wait=" + ackWait }

func (s *server) Describe() string {
	if s.dataDir == "" {
		return fmt.Sprintf("embedded NATS JetStream server at %s, data in %s (removed at exit; --data-dir keeps it)", s.srv.ClientURL(), s.srv.DataDir())
	}
	return fmt.Sprintf("embedded NATS JetStream server at %s, data kept in %s", s.srv.ClientURL(), s.srv.DataDir())
}

func (s *server) Close() error { return s.srv.Close() }
