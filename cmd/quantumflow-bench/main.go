// Command quantumflow-bench compares QuantumFlow's backends with raw
// baselines (pgx, watermill-sql, Watermill's GoChannel, nats.go JetStream)
// in one run; see `quantumflow-bench --help` and package bench.
//
// It is a binary of its own, not a command of quantumflow, because it
// starts throwaway PostgreSQL clusters (internal/pgtest) and links the
// baselines' client libraries: the operator tool links neither.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
