package router_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// A Singularity instance publishes a proposal; CentralCloud consumes it.
// Both services share one in-memory backend here; in production each opens
// the same database or NATS URL.
func Example() {
	ctx := context.Background()
	backend, err := pubsub.Open(ctx, "mem://example")
	if err != nil {
		panic(err)
	}
	defer backend.Close()

	bus := telemetry.NewBus()
	events := make(chan string, 10)
	_ = bus.Attach("print", telemetry.ProposalReceived, func(e telemetry.Event, _ telemetry.Measurements, md telemetry.Metadata) {
		events <- fmt.Sprint(e.Name(), " by ", md["handler"])
	})

	received := make(chan string, 1)
	central, _ := topology.Default(topology.CentralCloud)
	cc, err := router.New(router.Config{
		Service:   central,
		Backend:   backend,
		Telemetry: bus,
		Queues:    []string{topology.ProposalsQueue},
		Handlers: map[string]router.Handler{
			// A typed handler: the payload arrives decoded and validated.
			topology.HandleProposalForConsensus: router.Handle(func(_ context.Context, p contracts.Proposal, m router.Meta) error {
				received <- fmt.Sprintf("proposal %s (%q, risk %.1f) from %s, %s", p.ID, p.Change, p.Risk, m.Origin, m.Schema)
				return nil
			}),
		},
	})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cc.Run(runCtx) }()
	<-cc.Running()

	singularity, _ := topology.Default(topology.Singularity)
	singularity.InstanceID = "singularity-1"
	sg, err := router.New(router.Config{
		Service: singularity, Backend: backend, Telemetry: bus,
		// This instance only publishes here; it still registers its
		// handlers, as New checks them.
		Handlers: map[string]router.Handler{
			topology.HandleConsensusResult:     func(*message.Message) error { return nil },
			topology.HandleRollbackTrigger:     func(*message.Message) error { return nil },
			topology.HandleSafetyProfileUpdate: func(*message.Message) error { return nil },
		},
	})
	if err != nil {
		panic(err)
	}
	pub, err := sg.Publisher(topology.ProposalsQueue)
	if err != nil {
		panic(err)
	}
	// A typed publisher: the value is validated, then sent as JSON.
	if _, err := router.Publish(ctx, pub, contracts.Proposal{ID: "p1", Instance: "singularity-1", Change: "tune cache", Risk: 0.2}); err != nil {
		panic(err)
	}

	select {
	case p := <-received:
		fmt.Println("handled:", p)
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	stop()
	fmt.Println("shutdown:", <-done)
	// The handled event is emitted once the handler has returned, so by
	// the time Run has returned.
	fmt.Println("event:", <-events)
	// Output:
	// handled: proposal p1 ("tune cache", risk 0.2) from singularity-1, quantumflow.proposal/v1
	// shutdown: <nil>
	// event: proposal_received by handle_proposal_for_consensus
}
