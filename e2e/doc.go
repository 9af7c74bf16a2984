// Package e2e is QuantumFlow's multi-process end-to-end test: the example
// services (examples/centralcloud and three examples/singularity
// instances) built as binaries and run as OS processes on one shared
// backend — a throwaway PostgreSQL cluster, and a three-node NATS
// JetStream cluster of nats-server processes started from deploy/nats —
// while each service process is SIGKILLed and restarted once (and on NATS
// one server node). Every process journals what it publishes and consumes
// (internal/journal, the services' -journal flag); at the end every
// message published is accounted for per queue: consumed, dead-lettered
// or still pending, none lost and none delivered to the wrong instance,
// duplicates counted and reported.
//
//	go test ./e2e/ -run TestEndToEnd -v     # or scripts/e2e.sh
//
// With -short the services send fewer rounds. The test needs Linux.
// QUANTUM_FLOW_E2E_REPORT=FILE appends the accounting tables to FILE;
// QUANTUM_FLOW_E2E_KEEP=DIR keeps the services' logs and journals and the
// NATS nodes' data under DIR instead of removing them.
package e2e
