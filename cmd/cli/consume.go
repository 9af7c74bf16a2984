package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

func (a *app) consumeCommand() *cobra.Command {
	var (
		workers int
		maxMsgs int
		idle    time.Duration
	)
	c := &cobra.Command{
		Use:   "consume QUEUE [--instance ID]",
		Short: "Take messages off a queue, print and ack them",
		Long: `consume takes messages off a queue with --workers competing subscriptions and
prints each one; with --json one object per message: id, queue, instance (on
addressed and broadcast queues), attempt, payload, metadata. Every line is
written (and flushed) before its message is acked, so a message whose line
could not be written goes back to the queue.

On a queue with addressed or broadcast delivery --instance ID is required
(QUEUE@ID is the same): consume receives only what is addressed to ID, or ID's
copies of a broadcast, and registers ID in the instance registry while it runs
(heartbeats every ` + heartbeat.String() + `, removed at exit), as the service's router
would; a new instance of a broadcast queue first gets the queue's latest
message. An id a live process already runs under is refused, naming its host
(exit 1). On a work queue --instance is refused (exit 2).

It runs until interrupted (SIGINT/SIGTERM: in-flight messages are settled
first), until --max messages were consumed, or until no message arrived for
--idle. Messages a worker took beyond --max go back to the queue unacked.
--workers is at most ` + strconv.Itoa(MaxWorkers) + `, --max at most ` + strconv.Itoa(MaxConsume) + `.`,
		Example: `  quantumflow consume proposals_for_consensus_queue --max 10 --json
  quantumflow consume consensus_results_queue --instance singularity-2 --idle 5s
  quantumflow consume metrics_to_guardian_queue --workers 4 --idle 5s`,
		Args: exactArgs("QUEUE"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			if idle < 0 {
				return usageErrorf("--idle must be >= 0, got %s", idle)
			}
			queue, instance, cfg, mode, err := a.queueTarget("consume", args[0])
			if err != nil {
				return err
			}
			if mode != topology.DeliveryWork && instance == "" {
				return usageErrorf("consume: queue %s has %s delivery: name the instance to receive as with --instance ID", queue, mode)
			}
			b, err := a.openBackend(ctx, cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			if err := checkQueue(ctx, b, cfg, queue); err != nil {
				return err
			}
			if !cmd.Flags().Changed("workers") {
				workers = 1
				if cc, ok := cfg.Consumer(queue); ok {
					workers = cc.Workers
				}
			}
			if maxMsgs > 0 {
				workers = min(workers, maxMsgs)
			}
			from := queue
			if instance != "" {
				from = pubsub.InstanceQueue(queue, instance)
				if err := ensureDeclared(ctx, b, cfg, queue, from); err != nil {
					return err
				}
				broadcast := ""
				if mode == topology.DeliveryBroadcast {
					broadcast = queue
				}
				reg, err := a.registerInstance(ctx, b, newInstance(consumingService(cfg, queue), instance, queue, workers), broadcast, cfg.BroadcastRetention)
				if err != nil {
					return err
				}
				defer reg.close()
			}
			cons := &consumer{out: cmd.OutOrStdout(), json: a.jsonOut, queue: queue, instance: instance, from: from, max: int64(maxMsgs)}
			return cons.run(ctx, b.Subscriber(), workers, idle)
		}),
	}
	c.Flags().IntVar(&workers, "workers", 0, "concurrent subscriptions (default: the service's configured workers for the queue, else 1)")
	c.Flags().IntVar(&maxMsgs, "max", 0, "stop after this many messages (0: no limit)")
	c.Flags().DurationVar(&idle, "idle", 0, "stop when no message arrived for this long (0: wait forever)")
	return c
}

// consumer prints and acks messages of one queue from several
// subscriptions.
type consumer struct {
	out   interface{ Write([]byte) (int, error) }
	json  bool
	queue string
	// instance is the instance consumed as; "" on a work queue.
	instance string
	// from is the queue subscribed to: queue, or instance's queue of it.
	from string
	max  int64

	outMu    sync.Mutex // one line at a time
	taken    atomic.Int64
	lastSeen atomic.Int64 // unix nanos of the last message

	// inFlight counts messages received and not yet settled; stop waits for
	// it to drain so that every ack happens before the subscriptions'
	// context is cancelled (an ack racing a cancel may be dropped, and the
	// message delivered again).
	mu       sync.Mutex
	settled  *sync.Cond
	inFlight int
	stopping bool
	err      error
}

func (c *consumer) run(parent context.Context, sub message.Subscriber, workers int, idle time.Duration) error {
	c.settled = sync.NewCond(&c.mu)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	c.lastSeen.Store(time.Now().UnixNano())

	chans := make([]<-chan *message.Message, 0, workers)
	for range workers {
		ch, err := sub.Subscribe(ctx, c.from)
		if err != nil {
			cancel()
			return fmt.Errorf("subscribe to queue %s: %w", c.from, err)
		}
		chans = append(chans, ch)
	}
	stopCh := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopCh) }) }

	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Go(func() {
			for msg := range ch {
				c.handle(msg, stop)
			}
		})
	}
	if idle > 0 {
		wg.Go(func() {
			t := time.NewTicker(min(idle/4+time.Millisecond, 500*time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if time.Since(time.Unix(0, c.lastSeen.Load())) >= idle {
						stop()
						return
					}
				}
			}
		})
	}
	select {
	case <-stopCh:
	case <-parent.Done():
	}
	c.mu.Lock()
	c.stopping = true
	for c.inFlight > 0 {
		c.settled.Wait()
	}
	err := c.err
	c.mu.Unlock()
	cancel()
	wg.Wait()
	return err
}

func (c *consumer) handle(msg *message.Message, stop func()) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		msg.Nack()
		return
	}
	c.inFlight++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.settled.Broadcast()
		c.mu.Unlock()
	}()

	n := c.taken.Add(1)
	if c.max > 0 && n > c.max {
		msg.Nack()
		return
	}
	c.lastSeen.Store(time.Now().UnixNano())
	attempt := 0
	if d := pubsub.DeliveryOf(msg); d != nil {
		attempt = d.Attempt
	}
	var err error
	c.outMu.Lock()
	if c.json {
		row := map[string]any{
			"id": msg.UUID, "queue": c.queue, "attempt": attempt, "payload": jsonPayload(msg.Payload), "metadata": map[string]string(msg.Metadata),
		}
		if c.instance != "" {
			row["instance"] = c.instance
		}
		err = writeJSONLine(c.out, row)
	} else {
		err = writeFlush(c.out, fmt.Appendf(nil, "%s %s attempt=%d %s\n", msg.UUID, c.from, attempt, msg.Payload))
	}
	c.outMu.Unlock()
	if err != nil {
		// Not printed, so not consumed: it goes back to the queue.
		msg.Nack()
		c.mu.Lock()
		c.err = errors.Join(c.err, err)
		c.mu.Unlock()
		stop()
		return
	}
	msg.Ack()
	if c.max > 0 && n == c.max {
		stop()
	}
}
