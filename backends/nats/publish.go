package nats

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// SendBatch publishes msgs to queue and returns once JetStream has
// acknowledged every one (stored it, and with replicas > 1 on a quorum of
// nodes). Transient failures (no responders while a server restarts or a
// leader is elected, timeouts, a reconnect) are retried within
// publish_timeout, or until ctx ends, with the same Nats-Msg-Id, so a
// retry never stores a message twice. On error some of msgs may be stored;
// publishing them again stores only the rest.
func (d *driver) SendBatch(ctx context.Context, queue string, msgs []*message.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q, err := d.queue(ctx, queue)
	if err != nil {
		return err
	}
	out := make([]*nats.Msg, len(msgs))
	keyed, delayed := false, false
	now := time.Now()
	for i, m := range msgs {
		publishID := m.UUID
		if key := m.Metadata[pubsub.MetadataDedupKey]; key != "" {
			publishID, keyed = dedupMsgID(key), true
		}
		out[i] = natsMessage(q.subject, m, publishID)
		if err := d.checkSize(m, out[i]); err != nil {
			return err
		}
		if at, ok, _ := pubsub.DeliverAtOf(m); ok && at.After(now) {
			delayed = true
		}
	}
	if keyed {
		if err := d.keyWindow(ctx, q); err != nil {
			return err
		}
	}
	recreate := func(ctx context.Context) {
		// No stream answered: either JetStream is briefly unavailable, or
		// the stream was deleted under the cache. Only the second is
		// fixed here; the first is waited out by the retries. One try's
		// time at most: while the stream has no leader (a node died) its
		// info request is never answered, and waiting for it with the
		// whole budget would outlast the election by far.
		ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		if _, err := d.js.Stream(ctx, q.stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			return
		}
		d.forget(queue)
		nq, err := d.queue(ctx, queue)
		if err == nil && keyed {
			// Recreated with the short window: keys need theirs.
			err = d.keyWindow(ctx, nq)
		}
		if err != nil {
			d.log.Debug("recreating the stream failed", "queue", queue, "error", err)
		}
	}
	switch {
	case !keyed && !delayed && len(out) == 1:
		return d.publishSingle(ctx, q, out[0], recreate)
	case !keyed && !delayed:
		return d.publishAll(ctx, out, &q.batched, recreate, nil)
	}
	// A batch's answer does not say which of its messages were duplicates
	// nor where they were stored: keyed and delayed publishes take the
	// per-message path, whose acks do.
	acks := make(map[*nats.Msg]*jetstream.PubAck, len(out))
	if err := d.publishAll(ctx, out, nil, recreate, func(m *nats.Msg, a *jetstream.PubAck) { acks[m] = a }); err != nil {
		return err
	}
	if delayed {
		d.scheduleDelayed(ctx, queue, out, acks)
	}
	return d.learnFirstIDs(ctx, q, msgs, out, acks)
}

// publishAll publishes msgs and waits for every ack, retrying (d.retry)
// the ones that failed transiently. While batched (not nil) is true (the
// stream allows fast batch publishing), several messages go as batches
// first. noStream, when not nil, is called after a publish found no
// stream answering. acked, when not nil, is given each message's ack
// (from the goroutine of publishAll).
func (d *driver) publishAll(ctx context.Context, msgs []*nats.Msg, batched *atomic.Bool, noStream func(context.Context), acked func(*nats.Msg, *jetstream.PubAck)) error {
	useBatches := batched != nil && batched.Load()
	// No Nats-Expected-Stream header: a subject of this backend belongs to
	// one stream by construction (the server refuses a stream whose
	// subjects overlap another's), and the header would be stored with
	// every message and decoded on every delivery.
	//
	// A try has no timeout of its own (a large publish may take longer
	// than one request should, and a try keeps what it stored): each
	// request in it is bounded by attemptTimeout instead, the wait for an
	// ack or a batch's answer as well as noStream's lookups, so that a
	// publish goes on within moments of a new leader.
	return d.retry(ctx, "publish", 0, func(ctx context.Context) error {
		var err error
		switch {
		case len(msgs) == 1:
			// One message: a synchronous publish is a round trip, no
			// future bookkeeping. Each attempt gets its own timeout so
			// that an ack lost in a reconnect is retried.
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			var ack *jetstream.PubAck
			ack, err = d.js.PublishMsg(actx, msgs[0])
			cancel()
			if err == nil && acked != nil {
				acked(msgs[0], ack)
			}
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
				msgs, err = d.publishAsync(ctx, msgs, nil)
			}
		default:
			msgs, err = d.publishAsync(ctx, msgs, acked)
		}
		if noStream != nil && errors.Is(err, jetstream.ErrNoStreamResponse) {
			noStream(ctx)
		}
		return err
	})
}

// attemptTimeout bounds one JetStream request (the wait for a publish's
// ack or a batch's answer, a stream lookup) and one try of an operation
// retried as a whole (Init, a queue's stream and consumer, a listing).
const attemptTimeout = 5 * time.Second

// requestTry bounds one try of a small request retried on its own: a
// delivery state read or write, a registry key read or written, a dead
// letter's ack. Each is idempotent, and while its stream (or consumer)
// has no leader, after a node died, it goes unanswered, or is lost
// when sent just as the new leader takes over: the try that follows the
// election must come soon after it.
const requestTry = time.Second

// publishAsync publishes msgs without waiting between them, then waits
// for every ack, given to acked when not nil. It returns the messages that
// failed and the first error.
func (d *driver) publishAsync(ctx context.Context, msgs []*nats.Msg, acked func(*nats.Msg, *jetstream.PubAck)) ([]*nats.Msg, error) {
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
			failed = append(failed, msgs[i+1:]...)
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if acked != nil {
				acked(msgs[i], ack)
			}
		case err := <-f.Err():
			fail(msgs[i], err)
		case <-ctx.Done():
			fail(msgs[i], ctx.Err())
		}
	}
	return failed, firstErr
}
