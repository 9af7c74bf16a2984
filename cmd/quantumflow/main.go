// Command quantumflow runs QuantumFlow's operator tool: init storage, watch
// queues, publish and consume by hand, work the dead-letter queue, check
// configuration and run the whole topology as a demo. See `quantumflow
// --help`; the logic lives in package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/quantumflow/quantumflow/cmd/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}
