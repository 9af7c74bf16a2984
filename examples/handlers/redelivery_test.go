package handlers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/examples/handlers"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/router"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

var errAckLost = errors.New("ack lost (test)")

// twice makes the backend deliver every message a second time after it
// was handled: the first success is followed by a nack, as when an ack is
// lost. It counts the messages settled for good: handled twice, or
// dead-lettered.
type twice struct {
	mu        sync.Mutex
	successes map[string]int
	settled   int
	changed   chan struct{}
}

func (tw *twice) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		d := pubsub.DeliveryOf(msg)
		key := d.Queue + " " + msg.UUID
		tw.mu.Lock()
		defer tw.mu.Unlock()
		defer func() {
			select {
			case tw.changed <- struct{}{}:
			default:
			}
		}()
		switch {
		case err != nil:
			return out, err
		case d.Outcome().DeadLetter != nil:
			tw.settled++
			return out, nil
		}
		tw.successes[key]++
		if tw.successes[key] == 1 {
			d.RetryAfter(0, errAckLost)
			return nil, errAckLost
		}
		tw.settled++
		return out, nil
	}
}

// TestEveryMessageDeliveredTwice runs the 14 rounds of the Example with
// every message delivered a second time after it was handled: the totals
// are those of the Example.
func TestEveryMessageDeliveredTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := "mem://handlers-twice"
	delay := time.Millisecond
	load := func(service string) topology.ServiceConfig {
		cfg, err := topology.Load(topology.LoadOptions{Service: service, LookupEnv: func(string) (string, bool) { return "", false },
			Overrides: topology.Overrides{MessagingURL: url, RetryDelay: &delay}})
		require.NoError(t, err)
		return cfg
	}
	bus := telemetry.NewBus()
	var pubMu sync.Mutex
	published := 0
	require.NoError(t, bus.Attach("test", telemetry.MessagePublished, func(telemetry.Event, telemetry.Measurements, telemetry.Metadata) {
		pubMu.Lock()
		published++
		pubMu.Unlock()
	}))
	backend, err := pubsub.Open(ctx, url)
	require.NoError(t, err)
	defer backend.Close()

	tw := &twice{successes: map[string]int{}, changed: make(chan struct{}, 1)}
	mws := []message.HandlerMiddleware{tw.middleware}
	cc := &handlers.CentralCloud{}
	ccRouter, err := router.New(router.Config{Service: load(topology.CentralCloud), Backend: backend, Handlers: cc.Handlers(), Telemetry: bus, Middlewares: mws})
	require.NoError(t, err)
	require.NoError(t, cc.Bind(ccRouter))
	sg := &handlers.Singularity{Instance: "singularity-1", Telemetry: bus}
	sgCfg := load(topology.Singularity)
	sgCfg.InstanceID = sg.Instance
	sgRouter, err := router.New(router.Config{Service: sgCfg, Backend: backend, Handlers: sg.Handlers(), Telemetry: bus, Middlewares: mws})
	require.NoError(t, err)
	require.NoError(t, sg.Bind(sgRouter))

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range []*router.Router{ccRouter, sgRouter} {
		wg.Go(func() { _ = r.Run(runCtx) })
		<-r.Running()
	}
	for n := range 14 {
		_, err := sg.Send(ctx, handlers.PlanRound(sg.Instance, n))
		require.NoError(t, err)
	}
	deadline := time.After(30 * time.Second)
	for {
		tw.mu.Lock()
		settled := tw.settled
		tw.mu.Unlock()
		pubMu.Lock()
		done := settled == published
		pubMu.Unlock()
		if done {
			break
		}
		select {
		case <-tw.changed:
		case <-deadline:
			t.Fatalf("settled %d of %d messages", settled, published)
		}
	}
	stop()
	wg.Wait()

	tw.mu.Lock()
	for key, n := range tw.successes {
		require.Equal(t, 2, n, "%s handled on two deliveries", key)
	}
	require.Len(t, tw.successes, published-2, "every message but the 2 dead letters")
	tw.mu.Unlock()
	require.EqualValues(t, 7, sg.Approved.Load())
	require.EqualValues(t, 6, sg.Rejected.Load())
	require.EqualValues(t, 2, sg.Rollbacks.Load())
	require.EqualValues(t, 2, sg.ProfileUpdates.Load())
	require.Equal(t, 2, sg.SafetyProfile().Version)
	require.EqualValues(t, 13, cc.Proposals.Load())
	require.EqualValues(t, 14, cc.Metrics.Load())
	require.EqualValues(t, 7, cc.Patterns.Load())
	require.EqualValues(t, 2, cc.RollbacksSent.Load())
	require.EqualValues(t, 2, cc.ProfilesSent.Load())
	dead, err := backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{})
	require.NoError(t, err)
	require.Len(t, dead, 2, "the poison proposal and the malformed pattern")
}
