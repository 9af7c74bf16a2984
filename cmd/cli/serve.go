package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/monitoring/metrics"
)

// defaultServeAddr is loopback only: the admin API must be exposed on
// purpose, never by default.
const defaultServeAddr = "127.0.0.1:8470"

func (a *app) serveCommand() *cobra.Command {
	var (
		addr      string
		threshold int
		interval  time.Duration
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the monitoring dashboard, the admin JSON API, /metrics and health checks",
		Long: `serve runs QuantumFlow's operator HTTP surface for the backend:

  /                                the web dashboard: queues with depth, rate and oldest age;
                                   dead letters with their errors, retry and purge buttons
  /metrics                         Prometheus metrics (queue gauges polled from the backend)
  /healthz, /readyz                alive; backend reachable and storage initialised
  /api/queues[/{queue}[/pending]]  queues, stats, pending messages (GET)
  /api/dlq                         dead letters (GET)
  /api/dlq/retry, /api/dlq/purge   work the dead-letter queue (POST)

It listens on 127.0.0.1 unless --http names another host; an address without
a host (":8470") also means 127.0.0.1. Use 0.0.0.0:PORT to listen on every
interface.

A service can mount the same handler under a prefix of its own mux instead:
see the package github.com/quantumflow/quantumflow/monitoring/httpapi.

Mutating requests need "Authorization: Bearer $QUANTUM_FLOW_ADMIN_TOKEN". The
token is read from the environment only (never a flag, which other users could
see); without it retry and purge are refused.

Instances (the dashboard's panel, /api/instances, quantumflow_instances) are
gone after instance_ttl without a heartbeat, from the configuration of
--service (--instance-ttl, QUANTUM_FLOW_INSTANCE_TTL, the file; 24h by
default), as the routers count.

When the dead letters of all queues pass --dlq-alert-threshold (the seed's
100), the dashboard shows the backend as degraded, the metric
quantumflow_dead_letters_alert goes to 1 and a warning is logged.`,
		Example: `  QUANTUM_FLOW_ADMIN_TOKEN=$(openssl rand -hex 16) quantumflow serve --url postgres://app@db/singularity
  quantumflow serve --http 0.0.0.0:8470 --dlq-alert-threshold 500`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			listenAddr, err := loopbackDefault(addr)
			if err != nil {
				return err
			}
			if threshold <= 0 {
				return usageErrorf("--dlq-alert-threshold must be positive, got %d", threshold)
			}
			if interval <= 0 {
				return usageErrorf("--poll-interval must be positive, got %s", interval)
			}
			cfg, b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			log := a.logger()
			token, _ := a.env.LookupEnv(httpapi.TokenEnv)
			token = strings.TrimSpace(token)
			if token == "" {
				log.Warn("no " + httpapi.TokenEnv + ": dead-letter retry and purge are disabled")
			}

			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
			if err != nil {
				return err
			}
			poller, err := metrics.NewPoller(metrics.PollerOptions{
				Admin: b, Metrics: m, Interval: interval, DLQAlertThreshold: threshold, Logger: log,
				InstanceTTL: cfg.InstanceTTL,
			})
			if err != nil {
				return err
			}

			ln, err := net.Listen("tcp", listenAddr)
			if err != nil {
				return fmt.Errorf("serve: listen on %s: %w", listenAddr, err)
			}
			url := "http://" + ln.Addr().String() + "/"
			out := cmd.OutOrStdout()
			if a.jsonOut {
				err = writeJSONLine(out, map[string]any{"listening": url, "backend": b.String(), "admin_enabled": token != "", "dlq_alert_threshold": threshold})
			} else {
				err = writeFlush(out, []byte(fmt.Sprintf("serving %s on %s (dashboard /, metrics /metrics; admin %s)\n",
					b.String(), url, map[bool]string{true: "enabled", false: "disabled: no " + httpapi.TokenEnv}[token != ""])))
			}
			if err != nil {
				_ = ln.Close()
				return err
			}

			runCtx, stop := context.WithCancel(ctx)
			var polling sync.WaitGroup
			polling.Go(func() { _ = poller.Run(runCtx) })
			err = httpapi.Serve(ctx, ln, httpapi.New(httpapi.Options{
				Backend: b, Registry: reg, AdminToken: token, DLQAlertThreshold: threshold, Logger: log,
				InstanceTTL: cfg.InstanceTTL,
			}))
			stop()
			polling.Wait()
			return err
		}),
	}
	c.Flags().StringVar(&addr, "http", defaultServeAddr, "address to listen on, HOST:PORT (no host: 127.0.0.1)")
	c.Flags().IntVar(&threshold, "dlq-alert-threshold", metrics.DefaultDLQAlertThreshold, "dead letters (all queues) above which the backend is degraded")
	c.Flags().DurationVar(&interval, "poll-interval", metrics.DefaultPollInterval, "how often queue stats are read for the metrics")
	return c
}

// loopbackDefault checks a HOST:PORT listen address and gives an address
// without a host the loopback one, so that nothing is exposed by accident.
func loopbackDefault(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageErrorf("--http %q: want HOST:PORT, e.g. 127.0.0.1:8470: %v", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
