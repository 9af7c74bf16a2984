package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// subject is one thing measured: a QuantumFlow backend reached through the
// public API, or a baseline written directly against its client library.
// Scenarios only talk to subjects, so every subject does the same work.
type subject interface {
	// prepare makes queue ready to publish to and consume from.
	prepare(ctx context.Context, queue string) error
	// publish writes payloads to queue in one call (one batch).
	publish(ctx context.Context, queue string, payloads [][]byte) error
	// consume starts workers competing for the messages of queue; each
	// message is passed to handle and then acknowledged. When handle
	// returns false the message is not acknowledged (it goes back to the
	// queue) and the worker takes no more messages, so that a measurement
	// that has what it needs does not eat the backlog the next one needs.
	// stop ends the workers and waits for them.
	consume(ctx context.Context, queue string, workers int, handle func(payload []byte) bool) (stop func(), err error)
	// close releases the subject's resources.
	close() error
}

// watermillSubject measures anything with Watermill's Publisher and
// Subscriber: the QuantumFlow backends, watermill-sql and GoChannel.
type watermillSubject struct {
	pub     message.Publisher
	sub     message.Subscriber
	declare func(ctx context.Context, queue string) error
	closeFn func() error
	// onMessage, when set, runs on each message before handle; an error
	// nacks the message and stops the worker (typed consume).
	onMessage func(*message.Message) error
}

func (s *watermillSubject) prepare(ctx context.Context, queue string) error {
	if s.declare == nil {
		return nil
	}
	return s.declare(ctx, queue)
}

func (s *watermillSubject) publish(_ context.Context, queue string, payloads [][]byte) error {
	msgs := make([]*message.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = message.NewMessage(watermill.NewUUID(), p)
	}
	return s.pub.Publish(queue, msgs...)
}

func (s *watermillSubject) consume(ctx context.Context, queue string, workers int, handle func([]byte) bool) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var chans []<-chan *message.Message
	// stop returns once every subscription ended. Returning earlier, while
	// they still gave back what they held, let the next measurement
	// subscribe to their receiver and meet that give-back halfway. A
	// message handed out as they end goes back too.
	stop := func() {
		cancel()
		wg.Wait()
		for _, ch := range chans {
			for msg := range ch {
				msg.Nack()
			}
		}
	}
	for range workers {
		ch, err := s.sub.Subscribe(ctx, queue)
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", queue, err)
		}
		chans = append(chans, ch)
		wg.Go(func() {
			for msg := range ch {
				if s.onMessage != nil && s.onMessage(msg) != nil || !handle(msg.Payload) {
					// Leave the channel unread: the subscription gives
					// this message and any it holds back when ctx ends.
					msg.Nack()
					return
				}
				msg.Ack()
			}
		})
	}
	return stop, nil
}

func (s *watermillSubject) close() error {
	var errs []error
	if s.closeFn != nil {
		errs = append(errs, s.closeFn())
	}
	return errors.Join(errs...)
}
