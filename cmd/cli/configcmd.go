package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func (a *app) configCommand() *cobra.Command {
	return groupCommand("config", "Show or check the effective configuration",
		a.configShowCommand(), a.configCheckCommand())
}

func (a *app) configShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration and the environment variables that set it",
		Long: `show prints the effective configuration of --service — the seed's defaults
overridden by --config, then the environment, then flags — as a YAML
configuration file that --config reads back, followed by the table of
environment variables each service reads. With --json, one object holding the
configuration and the table. Passwords and tokens in URLs are redacted.`,
		Args: noArgs,
		RunE: a.runE(func(_ context.Context, cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			cfg = cfg.Redacted()
			out := cmd.OutOrStdout()
			if a.jsonOut {
				return writeJSONLine(out, map[string]any{"service": cfg.Name, "config": cfg, "env": topology.EnvTable()})
			}
			y, err := topology.MarshalFile(cfg)
			if err != nil {
				return fmt.Errorf("render configuration: %w", err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# Effective configuration of %s.\n", cfg.Name)
			b.Write(y)
			b.WriteString("\n# Environment variables (override the file; flags override them):\n")
			if _, err := out.Write([]byte(b.String())); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			t := newTable(out, "# VARIABLE", "SERVICE", "SETS", "SIDE", "QUEUE", "DEFAULT", "SET_TO")
			for _, v := range topology.EnvTable() {
				set := "-"
				if val, ok := a.env.LookupEnv(v.Name); ok && val != "" {
					set = val
					if v.Setting == topology.SettingDatabaseURL || v.Setting == topology.SettingMessagingURL {
						set = pubsub.RedactURL(val)
					}
				}
				t.row("# "+v.Name, v.Service, v.Setting, dash(v.Side), dash(v.Queue), dash(v.Default), set)
			}
			return t.flush()
		}),
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) configCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration of both services; exit 2 when invalid",
		Long: `check loads the configuration of each service from --config, the environment
and flags, and validates it: known queues, workers, retries and delays within
their bounds, a usable URL and instance id, unknown YAML keys, and that every
consumer's handler is one the seed defines. Then it checks the two services
together: the producer and the consumer of every queue must be on one
messaging backend (messaging_url, else database_url) and agree on its delivery
mode. It does not connect to the backend.

--service all (the default) checks both services and the pair; --service
singularity or centralcloud checks that service alone. On success it prints one
line per service: its backend (redacted), producers and consumers. Every
problem is reported with the key or variable, the bad value (URLs redacted)
and, for the pair, the queue; the exit status is 2 when any is found.`,
		Example: `  quantumflow config check
  QUANTUM_FLOW_MESSAGING_URL=postgres://app@db/quantumflow quantumflow config check --service all --json`,
		Args: noArgs,
		RunE: a.runE(func(_ context.Context, cmd *cobra.Command, _ []string) error {
			services := topology.Services()
			if cmd.Flags().Changed("service") && a.service != serviceAll {
				services = []string{a.service}
			}
			out := cmd.OutOrStdout()
			var problems []string
			var loaded []topology.ServiceConfig
			for _, svc := range services {
				opts := a.loadOptions()
				opts.Service = svc
				cfg, err := a.loadConfigWith(opts)
				if err == nil {
					err = topology.ValidateHandlers(cfg, handlers.Names(svc))
				}
				if a.jsonOut {
					row := map[string]any{"service": svc, "ok": err == nil}
					if err != nil {
						row["error"] = a.scrub(err)
					} else {
						row["database_url"] = pubsub.RedactURL(cfg.DatabaseURL)
						row["backend_url"] = pubsub.RedactURL(cfg.BackendURL())
						row["instance_id"] = cfg.InstanceID
					}
					if werr := writeJSONLine(out, row); werr != nil {
						return werr
					}
				} else if err == nil {
					if _, werr := fmt.Fprintf(out, "%s: ok (%s, instance %s, %d producers, %d consumers)\n", svc, pubsub.RedactURL(cfg.BackendURL()), cfg.InstanceID, len(cfg.Producers), len(cfg.Consumers)); werr != nil {
						return fmt.Errorf("write output: %w", werr)
					}
				}
				if err != nil {
					problems = append(problems, err.Error())
				} else {
					loaded = append(loaded, cfg)
				}
			}
			if len(problems) == 0 && len(loaded) == 2 {
				if err := topology.CheckPair(loaded[0], loaded[1]); err != nil {
					if a.jsonOut {
						if werr := writeJSONLine(out, map[string]any{"service": serviceAll, "ok": false, "error": a.scrub(err)}); werr != nil {
							return werr
						}
					}
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				return usageErrorf("%s", strings.Join(problems, "\n"))
			}
			return nil
		}),
	}
}

// serviceAll is --service's value for both services (config check).
const serviceAll = "all"
