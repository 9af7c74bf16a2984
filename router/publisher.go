package router

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/telemetry"
	"github.com/quantumflow/quantumflow/topology"
)

// Publisher publishes to one of the service's producer queues and emits
// the queue's telemetry. It is safe for concurrent use, and usable whether
// or not the Router runs. It does not limit concurrency: the producer's
// workers setting is the number of goroutines a service is expected to
// publish from, and PublishMessages batches for throughput.
type Publisher struct {
	service   string
	producer  topology.Producer
	pub       message.Publisher
	bus       *telemetry.Bus
	published telemetry.Event
}

// Publisher returns the publisher for queue, which must be one of the
// service's producer queues.
func (r *Router) Publisher(queue string) (*Publisher, error) {
	p, ok := r.cfg.Service.Producer(queue)
	if !ok {
		have := make([]string, 0, len(r.cfg.Service.Producers))
		for _, p := range r.cfg.Service.Producers {
			have = append(have, p.Queue)
		}
		return nil, fmt.Errorf("router %s: publisher for %w %q: the service does not produce to it (it produces to: %s)",
			r.Service(), pubsub.ErrQueueNotFound, queue, joinOrNone(have))
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if pub, ok := r.pubs[queue]; ok {
		return pub, nil
	}
	bp := r.cfg.Backend.Publisher()
	if r.cfg.WrapPublisher != nil {
		bp = r.cfg.WrapPublisher(bp)
	}
	pub := &Publisher{
		service:   r.Service(),
		producer:  p,
		pub:       bp,
		bus:       r.cfg.Telemetry,
		published: telemetry.PublishedEvent(queue),
	}
	r.pubs[queue] = pub
	return pub, nil
}

// Queue returns the queue the publisher publishes to.
func (p *Publisher) Queue() string { return p.producer.Queue }

// PublishOption sets something on a message before it is published.
type PublishOption func(*message.Message)

// WithPriority sets the message's priority (higher is delivered first on
// backends with pubsub.CapPriorityOrder).
func WithPriority(prio pubsub.Priority) PublishOption {
	return func(m *message.Message) { pubsub.SetPriority(m, prio) }
}

// WithMetadata sets a metadata entry on the message.
func WithMetadata(key, value string) PublishOption {
	return func(m *message.Message) { m.Metadata.Set(key, value) }
}

// WithID sets the message's id instead of a new random UUID; useful to make
// a publish idempotent on the caller's side.
func WithID(id string) PublishOption {
	return func(m *message.Message) { m.UUID = id }
}

// Publish publishes one message with payload and returns its id.
func (p *Publisher) Publish(ctx context.Context, payload []byte, opts ...PublishOption) (string, error) {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for _, o := range opts {
		o(msg)
	}
	if err := p.PublishMessages(ctx, msg); err != nil {
		return "", err
	}
	return msg.UUID, nil
}

// PublishMessages publishes msgs in one call, which backends write as one
// batch where they can. Messages without a UUID get one; messages without a
// priority get the producer's when it is not normal; every message gets
// telemetry.MetadataPublishedAt and ctx as its context. For each message it
// emits the queue's published event (e.g. proposal_published) and
// message_published, or publish_failed on error.
func (p *Publisher) PublishMessages(ctx context.Context, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish to %s: %w", p.producer.Queue, err)
	}
	start := time.Now()
	stamp := strconv.FormatInt(start.UnixNano(), 10)
	for _, m := range msgs {
		if m.UUID == "" {
			m.UUID = watermill.NewUUID()
		}
		if m.Metadata == nil {
			m.Metadata = message.Metadata{}
		}
		if m.Metadata.Get(telemetry.MetadataPublishedAt) == "" {
			m.Metadata.Set(telemetry.MetadataPublishedAt, stamp)
		}
		if _, has, _ := pubsub.PriorityOf(m); !has && p.producer.Priority != "" && p.producer.Priority != topology.PriorityNormal {
			pubsub.SetPriority(m, p.producer.Priority.Backend())
		}
		m.SetContext(ctx)
	}
	err := p.pub.Publish(p.producer.Queue, msgs...)
	if err != nil {
		err = fmt.Errorf("publish %d message(s) to %s: %w", len(msgs), p.producer.Queue, err)
	}
	p.emit(msgs, time.Since(start), err)
	return err
}

func (p *Publisher) emit(msgs []*message.Message, elapsed time.Duration, err error) {
	if !p.bus.ListeningUnder(telemetry.Prefix) {
		return
	}
	for _, m := range msgs {
		meas := telemetry.Measurements{
			telemetry.MeasureCount:     1,
			telemetry.MeasureDuration:  float64(elapsed) / float64(time.Millisecond),
			telemetry.MeasureBatchSize: float64(len(msgs)),
		}
		md := telemetry.Metadata{
			telemetry.MetaQueue: p.producer.Queue, telemetry.MetaService: p.service, telemetry.MetaMessageID: m.UUID,
		}
		if prio, has, _ := pubsub.PriorityOf(m); has {
			md[telemetry.MetaPriority] = int(prio)
		}
		if err != nil {
			md[telemetry.MetaError] = err.Error()
			p.bus.Execute(telemetry.PublishFailed, meas, md)
			continue
		}
		if p.published != nil {
			p.bus.Execute(p.published, meas, md)
		}
		p.bus.Execute(telemetry.MessagePublished, meas, md)
	}
}
