package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/monitoring/httpapi"
	"github.com/quantumflow/quantumflow/monitoring/metrics"
	"github.com/quantumflow/quantumflow/pubsub"
)

// defaultServeAddr is loopback only: the admin API must be exposed on
// purpose, never by default.
const defaultServeAddr = "127.0.0.1:8470"

func (a *app) serveCommand() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the monitoring dashboard, the admin JSON API, /metrics and health checks",
		Long: `serve runs QuantumFlow's operator HTTP surface for the backend:

  /                                the web dashboard: queues with depth, rate and oldest age;
                                   dead letters with their errors, retry and purge buttons
  /metrics                         Prometheus metrics (queue gauges polled from the backend)
  /healthz, /readyz                alive; backend reachable and storage initialised
  /api/queues[/{queue}[/pending]]  queues, stats, pending messages (GET)
  /api/dlq                         dead letters (GET; ?error_contains= filters)
  /api/dlq/retry, /api/dlq/purge   work the dead-letter queue (POST)
  /api/history                     depth and throughput of the last hour (GET)
  /api/audit                       the audit log of every mutation (GET)

It listens on 127.0.0.1 unless --http names another host; an address without
a host (":8470") also means 127.0.0.1. Use 0.0.0.0:PORT to listen on every
interface.

A service can mount the same handler under a prefix of its own mux instead:
see the package github.com/quantumflow/quantumflow/monitoring/httpapi.

Mutating requests need "Authorization: Bearer $QUANTUM_FLOW_ADMIN_TOKEN";
without it retry and purge are refused. With QUANTUM_FLOW_READ_TOKEN set,
every read (the API's GETs and /metrics) needs it or the admin token; the
health checks and the dashboard's page stay open (the page asks for a token).
Tokens are read from the environment, or from the file that
QUANTUM_FLOW_ADMIN_TOKEN_FILE or QUANTUM_FLOW_READ_TOKEN_FILE names, never
from a flag, which other users could see. Every mutation is recorded in the
backend's audit log (quantumflow audit, /api/audit).

--tls-cert and --tls-key (PEM files) serve HTTPS instead of HTTP: use them
whenever the dashboard is reached over a network, since tokens travel in
every request.

Instances (the dashboard's panel, /api/instances, quantumflow_instances) are
gone after instance_ttl without a heartbeat, from the configuration of
--service (--instance-ttl, QUANTUM_FLOW_INSTANCE_TTL, the file; 24h by
default), as the routers count.

When the dead letters of all queues pass --dlq-alert-threshold (the seed's
100), the dashboard shows the backend as degraded, the metric
quantumflow_dead_letters_alert goes to 1 and a warning is logged.`,
		Example: `  QUANTUM_FLOW_ADMIN_TOKEN=$(openssl rand -hex 16) quantumflow serve --url postgres://app@db/singularity
  QUANTUM_FLOW_ADMIN_TOKEN_FILE=/run/secrets/qf-admin QUANTUM_FLOW_READ_TOKEN_FILE=/run/secrets/qf-read \
    quantumflow serve --http 0.0.0.0:8470 --tls-cert /etc/qf/tls.crt --tls-key /etc/qf/tls.key`,
		Args: noArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			return a.serve(ctx, cmd, &f)
		}),
	}
	c.Flags().StringVar(&f.addr, "http", defaultServeAddr, "address to listen on, HOST:PORT (no host: 127.0.0.1)")
	c.Flags().IntVar(&f.threshold, "dlq-alert-threshold", metrics.DefaultDLQAlertThreshold, "dead letters (all queues) above which the backend is degraded")
	c.Flags().DurationVar(&f.interval, "poll-interval", metrics.DefaultPollInterval, "how often queue stats are read for the metrics")
	c.Flags().StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key")
	c.Flags().StringVar(&f.tlsKey, "tls-key", "", "the PEM private key file of --tls-cert")
	return c
}

// tlsConfig loads --tls-cert and --tls-key: nil when neither is given.
// Only one of them, or files that do not load as a key pair, are usage
// errors (exit 2), before anything is opened.
func tlsConfig(cert, key string) (*tls.Config, error) {
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, usageErrorf("--tls-cert and --tls-key go together: give both or neither")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, usageErrorf("--tls-cert %s, --tls-key %s: %v", cert, key, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// loopbackDefault checks a HOST:PORT listen address and gives an address
// without a host the loopback one, so that nothing is exposed by accident.
func loopbackDefault(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		return "", usageErrorf("--http %q: want HOST:PORT, e.g. 127.0.0.1:8470: %v", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveFlags are serve's flags.
type serveFlags struct {
	addr            string
	threshold       int
	interval        time.Duration
	tlsCert, tlsKey string
}

// serveSetup is what serve checked before opening the backend.
type serveSetup struct {
	listenAddr       string
	token, readToken string
	tls              *tls.Config
}

// check checks the flags, the tokens and the TLS files: every refusal is
// a usage error, before anything is opened.
func (f *serveFlags) check(lookup func(string) (string, bool)) (serveSetup, error) {
	var s serveSetup
	var err error
	if s.listenAddr, err = loopbackDefault(f.addr); err != nil {
		return s, err
	}
	if f.threshold <= 0 {
		return s, usageErrorf("--dlq-alert-threshold must be positive, got %d", f.threshold)
	}
	if f.interval <= 0 {
		return s, usageErrorf("--poll-interval must be positive, got %s", f.interval)
	}
	if s.token, s.readToken, err = httpapi.Tokens(lookup); err != nil {
		return s, usageError{err}
	}
	s.tls, err = tlsConfig(f.tlsCert, f.tlsKey)
	return s, err
}

// serve runs the serve command until ctx ends.
func (a *app) serve(ctx context.Context, cmd *cobra.Command, f *serveFlags) error {
	s, err := f.check(a.env.LookupEnv)
	if err != nil {
		return err
	}
	cfg, b, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	log := a.logger()
	if s.token == "" {
		log.Warn("no " + httpapi.TokenEnv + ": dead-letter retry and purge are disabled")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(metrics.Options{Registerer: reg, Backend: b.Scheme()})
	if err != nil {
		return err
	}
	poller, err := metrics.NewPoller(metrics.PollerOptions{
		Admin: b, Metrics: m, Interval: f.interval, DLQAlertThreshold: f.threshold, Logger: log,
		InstanceTTL: cfg.InstanceTTL,
	})
	if err != nil {
		return err
	}
	ln, err := a.listen(cmd.OutOrStdout(), b, s, f.threshold)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	var polling sync.WaitGroup
	polling.Go(func() { _ = poller.Run(runCtx) })
	h := httpapi.New(httpapi.Options{
		Backend: b, Registry: reg, AdminToken: s.token, ReadToken: s.readToken, DLQAlertThreshold: f.threshold, Logger: log,
		InstanceTTL: cfg.InstanceTTL,
	})
	err = httpapi.Serve(ctx, ln, h)
	h.Close()
	stop()
	polling.Wait()
	return err
}

// listen opens the listener (TLS with s.tls) and says where to out.
func (a *app) listen(out io.Writer, b *pubsub.Backend, s serveSetup, threshold int) (net.Listener, error) {
	ln, err := net.Listen("tcp", s.listenAddr)
	if err != nil {
		return nil, fmt.Errorf("serve: listen on %s: %w", s.listenAddr, err)
	}
	url := "http://" + ln.Addr().String() + "/"
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
		url = "https://" + ln.Addr().String() + "/"
	}
	if a.jsonOut {
		err = writeJSONLine(out, map[string]any{"listening": url, "backend": b.String(), "admin_enabled": s.token != "",
			"read_token_required": s.readToken != "", "dlq_alert_threshold": threshold})
	} else {
		err = writeFlush(out, []byte(fmt.Sprintf("serving %s on %s (dashboard /, metrics /metrics; admin %s)\n",
			b.String(), url, map[bool]string{true: "enabled", false: "disabled: no " + httpapi.TokenEnv}[s.token != ""])))
	}
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln, nil
}
