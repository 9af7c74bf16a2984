// Package handlers holds the example handlers of the two services of the
// QuantumFlow topology, shared by examples/singularity,
// examples/centralcloud and `quantumflow demo`.
//
// CentralCloud votes on proposals and answers each on
// consensus_results_queue, receives execution metrics (ordering a
// high-priority rollback when the error rate is too high) and patterns
// (tightening the safety profile on an unsafe one). A Singularity instance
// sends proposals, metrics and patterns, and handles consensus results
// (emitting consensus_approved or consensus_rejected), rollback triggers
// and safety profile updates.
//
// The messages are the topology's contracts (package contracts), handled
// by typed handlers (router.Handle) and sent by typed publishers
// (router.Publish). The handlers are idempotent: a message delivered twice
// (normal under at-least-once delivery) is counted once, by its business
// id (a proposal's, a rollback order's), so the consensus tally and the
// safety profile version stay right under redelivery.
//
// Some messages fail on purpose, to show the failure paths: a flaky message
// fails its first attempt and succeeds on the retry, a poison proposal
// fails every attempt and ends as a dead letter after max_retries, and a
// malformed payload is dead-lettered at once by router.Handle, its error
// naming the queue and the field.
//
// Wiring, as a service's main does it:
//
//	cc := &handlers.CentralCloud{}
//	r, err := router.New(router.Config{Service: cfg, Backend: backend, Handlers: cc.Handlers()})
//	...
//	if err := cc.Bind(r); err != nil { ... }
//	err = r.Run(ctx)
package handlers
