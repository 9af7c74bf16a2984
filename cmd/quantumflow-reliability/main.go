// Command quantumflow-reliability runs QuantumFlow's reliability
// scenarios (package reliability) on the backends and writes the report:
// scripts/reliability.sh runs it and writes RELIABILITY.md.
//
//	go run ./cmd/quantumflow-reliability --short
//	go run ./cmd/quantumflow-reliability --results RELIABILITY.md
//	go run ./cmd/quantumflow-reliability --short --scenario restart --backend nats
//
// It is a binary of its own, not a command of quantumflow, because it
// starts throwaway PostgreSQL clusters (internal/pgtest) and an embedded
// NATS server, and runs itself again as the consumer process the sigkill
// scenario kills.
//
// Exit status: 0 every scenario passed, 1 a scenario failed, 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/quantumflow/quantumflow/reliability"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == reliability.ChildArg {
		code = reliability.ChildMain(ctx, os.Args[2:], os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// run parses args, runs the scenarios and writes the report: Markdown (or
// JSON with --json) to stdout, and to --results when given.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("quantumflow-reliability", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "run every scenario at CI size (a few minutes on two cores)")
	scenarios := fs.StringSlice("scenario", nil, "run only these scenarios (comma-separated): "+strings.Join(reliability.Scenarios(), ", "))
	backends := fs.StringSlice("backend", nil, "run only on these backends (comma-separated): "+strings.Join(reliability.Backends(), ", "))
	results := fs.String("results", "", "also write the Markdown report to this file (e.g. RELIABILITY.md)")
	jsonOut := fs.Bool("json", false, "print the report as JSON instead of Markdown")
	logLevel := fs.String("log-level", "", "log the backends' and servers' logs on stderr at this level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q (quantumflow-reliability takes flags only)\n", fs.Arg(0))
		return exitUsage
	}
	cfg := reliability.Config{Short: *short, Scenarios: *scenarios, Backends: *backends, Progress: stderr,
		Command: "go run ./cmd/quantumflow-reliability " + strings.Join(args, " ")}
	if *logLevel != "" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			fmt.Fprintf(stderr, "Error: --log-level %q: use debug, info, warn or error\n", *logLevel)
			return exitUsage
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	exe, err := os.Executable()
	if err == nil {
		cfg.Executable = exe
	}
	rep, err := reliability.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	if err := write(rep, *results, *jsonOut, stdout); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitFailure
	}
	if err != nil || !rep.Passed() {
		fmt.Fprintln(stderr, "reliability: failed:", errors.Join(err, failures(rep)))
		return exitFailure
	}
	return exitOK
}

// write writes the report to stdout and, when results is set, as Markdown
// to that file.
func write(rep *reliability.Report, results string, jsonOut bool, stdout io.Writer) error {
	if results != "" {
		f, err := os.Create(results)
		if err != nil {
			return err
		}
		if err := errors.Join(rep.WriteMarkdown(f), f.Close()); err != nil {
			return err
		}
	}
	if jsonOut {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteMarkdown(stdout)
}

// failures names the scenarios that failed.
func failures(rep *reliability.Report) error {
	var out []string
	for _, r := range rep.Results {
		if !r.Pass {
			out = append(out, r.Scenario+"/"+r.Backend)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return errors.New(strings.Join(out, ", "))
}
