// Package reliability is QuantumFlow's reliability harness: it runs the
// seed's topology through the router on each backend while it breaks
// something — a consumer process SIGKILLed, the server restarted or gone
// for a while, every database connection terminated, the network between
// service and backend slowed, cut or reset, a transaction holding vacuum
// back, malformed messages flooding in, a long soak; on a three-node NATS
// cluster the stream's leader, a follower, then every node — and accounts for
// every message: published, consumed, dead-lettered, duplicated, lost.
// Each scenario states its rule beside its figures and passes or fails
// against it. Run it with `go run ./cmd/quantumflow-reliability` (or
// scripts/reliability.sh, which writes RELIABILITY.md); Short runs every
// scenario at a size fit for CI.
//
// The harness starts what it needs and stops it afterwards: a throwaway
// PostgreSQL cluster (internal/pgtest, fsync on) and an embedded NATS
// server (backends/nats/embedded) on a data directory of its own, so that
// it can be stopped and started again on the same port.
//
// # The workload
//
// Every scenario drives the seed's work queues (proposals, execution
// metrics, patterns), suffixed per scenario so that no scenario sees
// another's messages: a Singularity router's publishers send, a
// CentralCloud router consumes with the seed's workers, retries and
// dead-lettering. Each message has an id of the harness's and a JSON
// payload with its intended send time. A message counts as published once
// Publish returned nil for it (a publish that failed is retried with the
// same id, as a careful publisher would); consumed once a handler saw it;
// duplicated for every delivery after its first; lost when it was
// published and neither consumed nor dead-lettered once the scenario
// drained.
//
// RSS and goroutines are the harness process's (which runs the embedded
// NATS server too), sampled at the start and the end of each scenario and
// every second between; the soak's bound is on them.
package reliability
