package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// publisher is the Watermill publisher. Publish returns nil only once
// JetStream has acknowledged every message (stored it, and with replicas
// > 1 on a quorum of nodes). Transient failures (no responders while a
// server restarts or a leader is elected, timeouts, a reconnect) are
// retried within publish_timeout with the same Nats-Msg-Id, so a retry
// never stores a message twice.
type publisher struct {
	d         *driver
	closeOnce sync.Once
	closed    chan struct{}
}

func (p *publisher) close() { p.closeOnce.Do(func() { close(p.closed) }) }

// Close makes later Publish calls fail with ErrClosed. The connection
// stays open for the subscriber and admin calls until the backend closes.
func (p *publisher) Close() error {
	p.close()
	return nil
}

// Publish publishes msgs to the queue topic, all or, on error, possibly
// some of them (a retry of the same messages is then deduplicated).
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := pubsub.ValidateQueueName(topic); err != nil {
		return err
	}
	select {
	case <-p.closed:
		return fmt.Errorf("publish to %s: %w", topic, pubsub.ErrClosed)
	default:
	}
	if len(msgs) == 0 {
		return nil
	}
	d := p.d
	if err := d.begin(); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	defer d.end()

	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.publishTimeout)
	defer cancel()
	// Close cancels publishes in flight rather than waiting them out.
	go func() {
		select {
		case <-d.closed:
			cancel()
		case <-p.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	q, err := d.queue(ctx, topic)
	if err != nil {
		return d.closedErr(fmt.Errorf("publish to %s: %w", topic, err))
	}
	out := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		out[i] = natsMessage(q.subject, m, m.UUID)
	}
	recreate := func(ctx context.Context) error {
		// No stream answered: either JetStream is briefly unavailable, or
		// the stream was deleted under the cache. Only the second is
		// fixed here; the first is waited out by the retries.
		if _, err := d.js.Stream(ctx, q.stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		d.forget(topic)
		_, err := d.queue(ctx, topic)
		return err
	}
	if err := d.publishAll(ctx, q.stream, out, &q.batched, recreate); err != nil {
		return d.closedErr(fmt.Errorf("publish %d message(s) to %s: %w", len(msgs), topic, err))
	}
	return nil
}

// publishAll publishes msgs to stream and waits for every ack, retrying
// the ones that failed transiently until ctx is done. While batched (not
// nil) is true (the stream allows fast batch publishing), several messages
// go as batches first. noStream, when not nil, is called after a publish
// found no stream answering.
func (d *driver) publishAll(ctx context.Context, stream string, msgs []*nats.Msg, batched *atomic.Bool, noStream func(context.Context) error) error {
	useBatches := batched != nil && batched.Load()
	// No Nats-Expected-Stream header: a subject of this backend belongs to
	// one stream by construction (the server refuses a stream whose
	// subjects overlap another's), and the header would be stored with
	// every message and decoded on every delivery.
	backoff := 50 * time.Millisecond
	for {
		var err error
		switch {
		case len(msgs) == 1:
			// One message: a synchronous publish is a round trip, no
			// future bookkeeping. Each attempt gets its own timeout so
			// that an ack lost in a reconnect is retried.
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			_, err = d.js.PublishMsg(actx, msgs[0])
			cancel()
		case useBatches:
			msgs, err = d.publishBatches(ctx, msgs)
			var apiErr *jetstream.APIError
			if err != nil && ctx.Err() == nil && (errors.Is(err, errBatchIncomplete) || errors.As(err, &apiErr)) {
				// The server refused part of a batch, or batches: the
				// per-message path tells which messages and why.
				useBatches = false
				if apiErr != nil && batchPublishDisabled(apiErr) {
					// Turned off on the stream since it was loaded: not
					// worth a refused batch per publish from now on.
					batched.Store(false)
				}
				continue
			}
		default:
			msgs, err = d.publishAsync(ctx, msgs)
		}
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
			}
			return err
		}
		d.log.Debug("publish failed, retrying", "stream", stream, "messages", len(msgs), "error", err)
		if noStream != nil && errors.Is(err, jetstream.ErrNoStreamResponse) {
			if nerr := noStream(ctx); nerr != nil {
				d.log.Debug("recreating the stream failed", "stream", stream, "error", nerr)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// attemptTimeout bounds one publish attempt (the wait for its ack).
const attemptTimeout = 5 * time.Second

// publishAsync publishes msgs without waiting between them, then waits
// for every ack. It returns the messages that failed and the first error.
func (d *driver) publishAsync(ctx context.Context, msgs []*nats.Msg) ([]*nats.Msg, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var failed []*nats.Msg
	var firstErr error
	fail := func(m *nats.Msg, err error) {
		failed = append(failed, m)
		if firstErr == nil {
			firstErr = err
		}
	}
	for i, m := range msgs {
		// A message given to PublishMsgAsync is owned by its future until
		// it completes; a retry sends a copy.
		cp := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		f, err := d.js.PublishMsgAsync(cp)
		if err != nil {
			fail(m, err)
			for _, rest := range msgs[i+1:] {
				failed = append(failed, rest)
			}
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fail(msgs[i], err)
		case <-ctx.Done():
			fail(msgs[i], ctx.Err())
		}
	}
	return failed, firstErr
}

// retryable reports whether a publish error is worth retrying with the
// same message ids: the server or stream leader was unreachable, or the
// ack did not arrive.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// Limits reached (503 as well, error code 10077), wrong stream and
		// other refusals do not go away by retrying; an unavailable
		// cluster, a missing leader or an offline stream do.
		switch apiErr.ErrorCode {
		case 10008, 10009, 10118: // cluster not available, not leader, stream offline
			return true
		}
		return apiErr.Code == 408
	}
	return errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}
