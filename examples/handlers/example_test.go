package handlers_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// settleWatch counts published messages and settled ones (consumed or
// dead-lettered) from telemetry, and wakes a waiter on every change.
type settleWatch struct {
	mu                 sync.Mutex
	published, settled int
	changed            chan struct{}
}

func (w *settleWatch) handle(ev telemetry.Event, _ telemetry.Measurements, _ telemetry.Metadata) {
	w.mu.Lock()
	switch ev.Name() {
	case telemetry.NameMessagePublished:
		w.published++
	case telemetry.NameMessageConsumed, telemetry.NameMessageDeadLettered:
		w.settled++
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// wait returns once every message published so far has settled.
func (w *settleWatch) wait() {
	for {
		w.mu.Lock()
		done := w.settled == w.published
		w.mu.Unlock()
		if done {
			return
		}
		<-w.changed
	}
}

// Example runs CentralCloud and one Singularity instance, each with its
// own router, on a shared in-memory backend, and sends 14 rounds of work.
func Example() {
	ctx := context.Background()
	const url = "mem://handlers-example"
	noEnv := func(string) (string, bool) { return "", false }
	delay := 5 * time.Millisecond // retry_delay_ms, short for the example
	load := func(service string) topology.ServiceConfig {
		cfg, err := topology.Load(topology.LoadOptions{Service: service, LookupEnv: noEnv,
			Overrides: topology.Overrides{MessagingURL: url, RetryDelay: &delay}})
		if err != nil {
			panic(err)
		}
		return cfg
	}

	bus := telemetry.NewBus()
	watch := &settleWatch{changed: make(chan struct{}, 1)}
	_ = bus.Attach("example", telemetry.Prefix, watch.handle)

	backend, err := pubsub.Open(ctx, url)
	if err != nil {
		panic(err)
	}
	defer backend.Close()

	cc := &handlers.CentralCloud{}
	ccRouter, err := router.New(router.Config{Service: load(topology.CentralCloud), Backend: backend, Handlers: cc.Handlers(), Telemetry: bus})
	if err != nil {
		panic(err)
	}
	if err := cc.Bind(ccRouter); err != nil {
		panic(err)
	}
	sg := &handlers.Singularity{Instance: "singularity-1", Telemetry: bus}
	sgRouter, err := router.New(router.Config{Service: load(topology.Singularity), Backend: backend, Handlers: sg.Handlers(), Telemetry: bus})
	if err != nil {
		panic(err)
	}
	if err := sg.Bind(sgRouter); err != nil {
		panic(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range []*router.Router{ccRouter, sgRouter} {
		wg.Go(func() { _ = r.Run(runCtx) })
		<-r.Running()
	}

	for n := range 14 {
		if _, err := sg.Send(ctx, handlers.PlanRound(sg.Instance, n)); err != nil {
			panic(err)
		}
	}
	watch.wait()
	stop()
	wg.Wait()

	dead, _ := backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
	fmt.Println("approved:", sg.Approved.Load(), "rejected:", sg.Rejected.Load())
	fmt.Println("rollbacks:", sg.Rollbacks.Load())
	fmt.Println("safety profile version:", sg.SafetyProfile().Version)
	fmt.Println("dead letters:", len(dead))
	// Output:
	// approved: 7 rejected: 6
	// rollbacks: 2
	// safety profile version: 2
	// dead letters: 2
}
