package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetstreamRaw is the floor for the NATS backend: nats.go's jetstream API
// used directly, one file-storage work-queue stream per queue and one
// durable pull consumer shared by the workers.
//   - publish of one message: a synchronous Publish (waits for the PubAck);
//   - publish of a batch: PublishAsync of each message, then wait for every
//     PubAck;
//   - consume: one Consume per worker on the shared consumer, Ack after the
//     handler.
//
// With msgID set every message is published with a fresh Nats-Msg-Id, so
// the server runs its duplicate check (the stream's default 2-minute
// window, as the backend's) on each one: the backend always sends one (the
// message UUID, issue 4's "publisher retries never duplicate"), and that
// check costs the server publish throughput the plain floor does not pay.
type jetstreamRaw struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	msgID bool
}

func openJetStreamRaw(_ context.Context, url string, msgID bool) (*jetstreamRaw, error) {
	nc, err := nats.Connect(url, nats.Name("quantumflow-bench-baseline"))
	if err != nil {
		return nil, fmt.Errorf("jetstream baseline: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream baseline: %w", err)
	}
	return &jetstreamRaw{nc: nc, js: js, msgID: msgID}, nil
}

func rawSubject(queue string) string { return "bench." + queue }

func (j *jetstreamRaw) prepare(ctx context.Context, queue string) error {
	if _, err := j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      queue,
		Subjects:  []string{rawSubject(queue)},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		return fmt.Errorf("jetstream baseline: stream %s: %w", queue, err)
	}
	if _, err := j.js.CreateOrUpdateConsumer(ctx, queue, jetstream.ConsumerConfig{
		Durable:   "workers",
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
	}); err != nil {
		return fmt.Errorf("jetstream baseline: consumer %s: %w", queue, err)
	}
	return nil
}

func (j *jetstreamRaw) publish(ctx context.Context, queue string, payloads [][]byte) error {
	subj := rawSubject(queue)
	if len(payloads) == 1 {
		_, err := j.js.Publish(ctx, subj, payloads[0], j.pubOpts()...)
		return err
	}
	futures := make([]jetstream.PubAckFuture, len(payloads))
	for i, p := range payloads {
		f, err := j.js.PublishAsync(subj, p, j.pubOpts()...)
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pubOpts gives one message's publish options: a new Nats-Msg-Id (a UUID,
// as the backend's message ids are) when msgID is set.
func (j *jetstreamRaw) pubOpts() []jetstream.PublishOpt {
	if !j.msgID {
		return nil
	}
	return []jetstream.PublishOpt{jetstream.WithMsgID(watermill.NewUUID())}
}

func (j *jetstreamRaw) consume(ctx context.Context, queue string, workers int, handle func([]byte) bool) (func(), error) {
	cons, err := j.js.Consumer(ctx, queue, "workers")
	if err != nil {
		return nil, fmt.Errorf("jetstream baseline: consumer %s: %w", queue, err)
	}
	var ccs []jetstream.ConsumeContext
	stop := func() {
		for _, cc := range ccs {
			cc.Stop()
		}
		for _, cc := range ccs {
			<-cc.Closed()
		}
	}
	for range workers {
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if !handle(m.Data()) {
				_ = m.Nak()
				return
			}
			_ = m.Ack()
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("jetstream baseline: consume %s: %w", queue, err)
		}
		ccs = append(ccs, cc)
	}
	return stop, nil
}

func (j *jetstreamRaw) close() error {
	j.nc.Close()
	return nil
}
