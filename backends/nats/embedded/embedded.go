// Package embedded runs a NATS server with JetStream inside the current
// process, listening on loopback only. It is QuantumFlow's zero-install
// default (`quantumflow demo`) and the server every NATS test runs against.
//
//	srv, err := embedded.Start(ctx, embedded.Options{DataDir: "/var/lib/qf"})
//	...
//	defer srv.Close()
//	backend, err := pubsub.Open(ctx, srv.ClientURL())
//
// # Durability
//
// JetStream keeps streams in files under DataDir, so with a data directory
// given, messages survive a restart of the process. By default JetStream
// writes every message to the operating system at once but fsyncs only
// every two minutes: a crash of the process loses nothing, a crash of the
// machine (power loss, kernel panic) can lose up to two minutes of
// acknowledged messages. Options.SyncAlways fsyncs on every write instead,
// which costs roughly an order of magnitude of publish throughput.
//
// StartCluster starts several servers as one JetStream cluster on loopback,
// for tests of replicated streams and node failures.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// DataDir is where JetStream keeps its files. Empty means a new
	// temporary directory, removed by Close.
	DataDir string
	// Port is the client port on 127.0.0.1. Zero picks a free port.
	Port int
	// SyncAlways makes JetStream fsync every write instead of every two
	// minutes: acknowledged messages then survive a machine crash too.
	SyncAlways bool
	// Logger receives the server's log. Nil discards it.
	Logger *slog.Logger
	// Configure, if set, edits the server's options last, just before the
	// server starts: for settings this package does not wrap, such as
	// TLS (TLSConfig, TLSVerify) or authentication (Username/Password,
	// Authorization, Nkeys, Users). With StartCluster it runs for every
	// node, at each start, and must leave the nodes open to a plain
	// client without credentials: the cluster's readiness is seen by
	// placing a stream (Cluster.WaitReady). It must not change Host, Port
	// or StoreDir.
	Configure func(*server.Options)
}

// Server is a running embedded NATS server.
type Server struct {
	ns      *server.Server
	dataDir string
	tempDir bool
}

// Start starts a server and waits until it accepts connections (and
// JetStream is up) or ctx is done.
func Start(ctx context.Context, opts Options) (*Server, error) {
	dataDir, temp, err := dataDirOf(opts.DataDir)
	if err != nil {
		return nil, err
	}
	sopts := baseOptions(opts, dataDir)
	if opts.Configure != nil {
		opts.Configure(sopts)
	}
	ns, err := startServer(ctx, sopts, opts.Logger)
	if err != nil {
		if temp {
			_ = os.RemoveAll(dataDir)
		}
		return nil, err
	}
	return &Server{ns: ns, dataDir: dataDir, tempDir: temp}, nil
}

// ClientURL returns the URL clients connect to: nats://127.0.0.1:PORT, or
// tls://127.0.0.1:PORT when Configure set a TLS configuration.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// DataDir returns the directory JetStream stores its files in.
func (s *Server) DataDir() string { return s.dataDir }

// Port returns the client port the server listens on.
func (s *Server) Port() int { return portOf(s.ns) }

// NATSServer returns the underlying nats-server, for tests that need to
// inspect it. Do not shut it down directly; call Close.
func (s *Server) NATSServer() *server.Server { return s.ns }

// Close shuts the server down, waits until it has stopped and, when the
// data directory was a temporary one, removes it. It is idempotent.
func (s *Server) Close() error {
	if s == nil || s.ns == nil {
		return nil
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	if s.tempDir {
		s.tempDir = false
		if err := os.RemoveAll(s.dataDir); err != nil {
			return fmt.Errorf("embedded nats: remove temp data dir: %w", err)
		}
	}
	return nil
}

func dataDirOf(dir string) (string, bool, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", false, fmt.Errorf("embedded nats: data dir: %w", err)
		}
		return dir, false, nil
	}
	dir, err := os.MkdirTemp("", "quantumflow-nats-*")
	if err != nil {
		return "", false, fmt.Errorf("embedded nats: temp data dir: %w", err)
	}
	return dir, true, nil
}

func baseOptions(opts Options, dataDir string) *server.Options {
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return &server.Options{
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		SyncAlways: opts.SyncAlways,
		// The embedding process owns signal handling.
		NoSigs: true,
	}
}

// startServer starts ns and waits for it to be ready, giving up when ctx
// is done or the server reports a fatal error (such as a port in use).
func startServer(ctx context.Context, sopts *server.Options, logger *slog.Logger) (*server.Server, error) {
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The adapter also catches Fatalf: nats-server reports a failed start
	// (port in use, unusable store) only through its logger.
	fatal := make(chan string, 1)
	ns.SetLoggerV2(slogAdapter{l: logger, fatal: fatal}, logger.Enabled(ctx, slog.LevelDebug), false, false)
	go ns.Start()
	stop := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-fatal:
			stop()
			return nil, fmt.Errorf("embedded nats: %s", msg)
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("embedded nats: not ready: %w", ctx.Err())
		default:
		}
	}
	if !ns.JetStreamEnabled() {
		stop()
		return nil, errors.New("embedded nats: JetStream did not start (see the server log)")
	}
	return ns, nil
}

func portOf(ns *server.Server) int {
	if a, ok := ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("embedded nats: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// slogAdapter sends the server's log to a slog.Logger and its fatal
// errors to a channel as well.
type slogAdapter struct {
	l     *slog.Logger
	fatal chan<- string
}

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
