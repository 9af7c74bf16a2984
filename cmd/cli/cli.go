// Package cli is the quantumflow command line tool as a library: Run takes
// the arguments, the environment and the writers to print to, and returns
// the exit status, so the tool is tested with buffers and the binary's main
// is a dozen lines.
//
// Exit status: 0 success, 1 runtime failure (backend unreachable, a
// message that could not be written, lost messages in the demo), 2 bad usage
// or configuration (unknown command or flag, wrong number of arguments,
// invalid configuration, a bad URL, an unknown queue, a payload that is not
// JSON).
//
// Output: tables for people by default; with --json, JSON lines (one object
// per row, per published or consumed message). Errors go to stderr. No
// output ever contains a URL's password, and a URL that does not parse is
// not shown at all.
//
// Every count flag has an upper bound (see limits.go: MaxWorkers for
// --workers, MaxConsume, MaxPublishCount, MaxListLimit, MaxIDs, and the
// demo's), checked with the other flags before anything is opened.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"

	// The tool opens every backend by URL.
	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Env is what the tool reads and writes besides its arguments.
type Env struct {
	// Stdout receives results. Lines are written whole; when it has a
	// Flush() error method (a *bufio.Writer) it is flushed after every
	// consumed message, before the message is acked.
	Stdout io.Writer
	// Stderr receives errors, progress and logs.
	Stderr io.Writer
	// LookupEnv reads environment variables. Defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Run runs the tool with args (without the program name) and returns the
// exit status. Cancelling ctx (SIGINT, SIGTERM in the binary) stops
// long-running commands gracefully.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.LookupEnv == nil {
		env.LookupEnv = os.LookupEnv
	}
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetContext(ctx)
	cmd, err := root.ExecuteC()
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	if !a.started || isUsage(err) {
		code = ExitUsage
	}
	a.printError(cmd, err, code)
	return code
}

// app holds the global flags and what commands share.
type app struct {
	env Env

	url      string
	urlSet   bool
	instance string
	// instanceSet is whether --instance was given: commands that read an
	// instance's queue need it named, never the host-name default.
	instanceSet bool
	configPath  string
	service     string
	jsonOut     bool
	profile     string
	logLevel    string
	logFormat   string
	// logLevelSet is whether --log-level was given.
	logLevelSet bool

	// instanceTTL and broadcastRetention are --instance-ttl and
	// --broadcast-retention (instance_ttl and broadcast_retention), which
	// override the configuration only when given (the Set fields).
	instanceTTL, broadcastRetention       time.Duration
	instanceTTLSet, broadcastRetentionSet bool

	// started is set when a command's own code begins to run (see runE):
	// an error before that came from cobra's parsing of arguments and flags.
	started bool
	// secrets are passwords seen in URLs, scrubbed from error text as a
	// last line of defence.
	secrets []string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "quantumflow",
		Short: "Durable asynchronous messaging between Singularity instances and CentralCloud",
		Long: `quantumflow operates QuantumFlow's queues: it initialises storage, lists queues and
their stats, shows pending messages, publishes and consumes by hand, works the
dead-letter queue, checks configuration and runs the whole topology as a demo.

The backend is chosen by URL, the service's messaging_url: --url, else
QUANTUM_FLOW_MESSAGING_URL, else the config file's messaging_url; when none is
set, the database_url: QUANTUM_FLOW_DATABASE_URL, else the config file's, else
the seed's default for --service (postgresql://localhost/singularity). Schemes: ` + strings.Join(pubsub.Schemes(), ", ") + `.

Queues with addressed delivery (consensus_results_queue,
rollback_triggers_queue) hold a queue per instance, QUEUE@INSTANCE; so do
queues with broadcast delivery (guardian_safety_profiles_queue), one copy
for each instance. publish --to, consume --instance and the --instance filter
of stats, pending and dlq name the instance.

Exit status: 0 success, 1 runtime failure, 2 bad usage or configuration.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing command (see quantumflow --help)")
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.urlSet = cmd.Flags().Changed("url")
			a.instanceSet = cmd.Flags().Changed("instance")
			a.instanceTTLSet = cmd.Flags().Changed("instance-ttl")
			a.broadcastRetentionSet = cmd.Flags().Changed("broadcast-retention")
			a.logLevelSet = cmd.Flags().Changed("log-level")
			if a.urlSet {
				a.noteSecret(a.url)
			}
			for _, name := range []string{topology.EnvDatabaseURL, topology.EnvMessagingURL} {
				if v, ok := a.env.LookupEnv(name); ok {
					a.noteSecret(v)
				}
			}
			if _, err := parseLevel(a.logLevel); err != nil {
				return err
			}
			if a.logFormat != "text" && a.logFormat != "json" {
				return usageErrorf("--log-format %q: use text or json", a.logFormat)
			}
			return checkLimits(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "backend URL, the service's messaging_url (overrides QUANTUM_FLOW_MESSAGING_URL, QUANTUM_FLOW_DATABASE_URL and the config file)")
	pf.StringVar(&a.instance, "instance", "", "instance id (instance_id): the instance consume receives as, whose queue stats, pending and dlq show, and the origin of what publish sends")
	pf.DurationVar(&a.instanceTTL, "instance-ttl", topology.DefaultInstanceTTL, "instance_ttl: how long an instance may go without a heartbeat before what is addressed to it is dead-lettered, and publish --to all skips it")
	pf.DurationVar(&a.broadcastRetention, "broadcast-retention", topology.DefaultBroadcastRetention, "broadcast_retention: how long an instance's copies of broadcast messages wait for it without a heartbeat; broadcasts go to instances heard from within it")
	pf.StringVar(&a.configPath, "config", "", "YAML configuration file (keys as in the seed's config)")
	pf.StringVar(&a.service, "service", topology.Singularity, "service whose configuration to use: "+strings.Join(topology.Services(), " or ")+" (config check: also all)")
	pf.BoolVar(&a.jsonOut, "json", false, "print JSON lines instead of tables")
	pf.StringVar(&a.profile, "profile", "", "scaling profile for worker counts: "+strings.Join(topology.ProfileNames(), ", "))
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn, error")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format on stderr: text or json")

	root.AddCommand(
		a.initCommand(),
		a.queuesCommand(),
		a.statsCommand(),
		a.pendingCommand(),
		a.publishCommand(),
		a.pauseCommand(true),
		a.pauseCommand(false),
		a.showCommand(),
		a.deleteCommand(),
		a.consumeCommand(),
		a.instancesCommand(),
		a.dlqCommand(),
		a.auditCommand(),
		a.configCommand(),
		a.demoCommand(),
		a.benchCommand(),
		a.versionCommand(),
		a.serveCommand(),
	)
	return root
}

// runE wraps a command's body: errors it returns are runtime failures
// unless marked as usage errors.
func (a *app) runE(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return fn(cmd.Context(), cmd, args)
	}
}

// groupCommand returns a command that only holds subcommands: run bare or
// with an unknown subcommand it is a usage error, not a silent help page.
func groupCommand(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usageErrorf("%s needs a subcommand: %s", cmd.CommandPath(), subNames(cmd))
		},
	}
	c.AddCommand(subs...)
	return c
}

func subNames(cmd *cobra.Command) string {
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return strings.Join(names, ", ")
}

// logger returns the logger for stderr at the chosen level and format.
func (a *app) logger() *slog.Logger {
	lvl, _ := parseLevel(a.logLevel)
	opts := &slog.HandlerOptions{Level: lvl}
	if a.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.env.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.env.Stderr, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageErrorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// usageError marks an error as bad usage or configuration (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// isUsage reports whether err means bad usage or configuration rather than
// a failure at run time.
func isUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	for _, s := range []error{topology.ErrInvalidConfig, pubsub.ErrInvalidURL, pubsub.ErrUnknownScheme, pubsub.ErrInvalidQueueName, pubsub.ErrInvalidArgument, pubsub.ErrQueueNotFound, pubsub.ErrMessageNotFound, pubsub.ErrUnsupported} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// noteSecret remembers the password of a URL so that printError can scrub
// it even from error text a dependency formatted.
func (a *app) noteSecret(raw string) {
	for _, s := range pubsub.URLSecrets(raw) {
		if len(s) >= 3 {
			a.secrets = append(a.secrets, s)
		}
	}
}

// scrub returns err's message without the secrets noted and without
// anything that looks like a URL's password.
func (a *app) scrub(err error) string {
	return pubsub.RedactError(err, a.secrets...).Error()
}

func (a *app) printError(cmd *cobra.Command, err error, code int) {
	msg := a.scrub(err)
	switch {
	case errors.Is(err, pubsub.ErrNotInitialized):
		msg += " (run `quantumflow init` first)"
	case errors.Is(err, pubsub.ErrQueueNotFound):
		msg += " (`quantumflow queues` lists the queues; `quantumflow init` declares the topology's)"
	}
	if a.jsonOut {
		line, _ := json.Marshal(map[string]any{"error": msg, "exit": code})
		fmt.Fprintf(a.env.Stderr, "%s\n", line)
		return
	}
	fmt.Fprintf(a.env.Stderr, "Error: %s\n", msg)
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(a.env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
}

// noArgs, exactArgs and rangeArgs are cobra argument checks whose errors
// are usage errors naming what was expected.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s takes %d argument(s) %s, got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}
