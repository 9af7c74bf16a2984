// Package monitoring is the home of QuantumFlow's observability; the work
// is done by its subpackages:
//
//   - monitoring/metrics: Prometheus metrics. Counters and histograms count
//     the telemetry events a service emits (attach a metrics.Metrics to its
//     telemetry.Bus); a metrics.Poller refreshes per-queue gauges (pending,
//     in flight, waiting for retry, dead letters, oldest pending age; an
//     instance queue's labelled with its queue and instance_id) from the
//     backend's stats, counts the instance registry by service and state
//     (quantumflow_instances) and raises the dead-letter alert (gauge and
//     log).
//   - monitoring/tracing: OpenTelemetry traces carried in message metadata
//     from publish to handler to reply; plugs into router.Config
//     (Middlewares, WrapPublisher). tracing.Setup reads the OTEL_
//     environment variables and exports nothing unless asked.
//   - monitoring/httpapi: the http.Handler with /metrics, /healthz, /readyz,
//     the JSON admin API (queues with their instance queues, the instance
//     registry, dead letters) and the web dashboard, which a service mounts
//     under a prefix of its own mux and `quantumflow serve` runs.
//
// deploy/prometheus/alerts.yml and deploy/grafana/quantumflow.json use the
// metric names of monitoring/metrics; tests check that they do.
//
// A service wires all of it like this:
//
//	backend, _ := pubsub.Open(ctx, cfg.BackendURL())
//	bus := telemetry.NewBus()
//
//	reg := prometheus.NewRegistry()
//	m, _ := metrics.New(metrics.Options{Registerer: reg, Backend: backend.Scheme()})
//	_ = m.Attach(bus)
//	poller, _ := metrics.NewPoller(metrics.PollerOptions{Admin: backend, Metrics: m, Logger: logger})
//	go poller.Run(ctx)
//
//	tp, shutdown, _ := tracing.Setup(ctx, cfg.Name)
//	defer shutdown(context.Background())
//	topts := tracing.Options{TracerProvider: tp, Service: cfg.Name, Backend: backend.Scheme()}
//
//	r, _ := router.New(router.Config{
//		Service: cfg, Backend: backend, Handlers: handlers, Telemetry: bus,
//		Middlewares:   []message.HandlerMiddleware{tracing.Middleware(topts)},
//		WrapPublisher: topts.Wrap,
//	})
//
//	admin, read, _ := httpapi.Tokens(os.LookupEnv)
//	h := httpapi.New(httpapi.Options{
//		Backend: backend, Registry: reg, AdminToken: admin, ReadToken: read, Logger: logger,
//	})
//	defer h.Close()
//	mux.Handle("/quantumflow/", http.StripPrefix("/quantumflow", h))
package monitoring
