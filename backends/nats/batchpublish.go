package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publishing several messages to a queue uses JetStream's fast batch
// publish (nats-server 2.14+, stream setting allow_batched): the messages
// go out as plain NATS publishes whose reply subject names the batch, its
// sequence and the operation (start, append, commit), and the server
// answers the batch once, when its last message is stored, instead of
// once per message. Each message keeps its Nats-Msg-Id: a duplicate in a
// batch is skipped and the batch goes on.
//
// The batches use the "gap: fail" mode: when a message of the batch is
// refused (a full queue) or lost on the way, the server commits the batch
// up to the message before it and its answer counts only those. So an
// answer without error that counts every message means every message is
// stored; anything else, and no answer within attemptTimeout, leaves the
// messages that were not counted to the per-message path (publishAsync),
// which says precisely what failed and retries what can be retried. A
// message stored twice that way is dropped by its Nats-Msg-Id.

// batchChunk is the most messages in one batch; a larger publish is split
// and at most batchWindow of its messages are in flight at once, as
// nats.go caps the asynchronous publishes of the other path.
const (
	batchChunk  = 500
	batchWindow = 4000
)

// Fast batch operations, the last token but one of the reply subject.
const (
	batchOpStart  = "0"
	batchOpAppend = "1"
	batchOpCommit = "2"
)

// batchAcks receives the answers to this connection's batches on one
// wildcard subscription and hands each batch's final answer to the
// publish waiting for it.
type batchAcks struct {
	prefix  string // <inbox>.; the batch id is the next token
	idBase  string // unique to this connection; batch ids are idBase+counter
	next    atomic.Uint64
	sub     *nats.Subscription
	mu      sync.Mutex
	waiting map[string]*batchWait
}

// batchWait is one batch in flight.
type batchWait struct {
	done chan batchResult // buffered: the answer never blocks the handler
	// flowErr is the first error the server reported for a message of the
	// batch before its final answer (informational, may be lost).
	flowErr *jetstream.APIError
}

// batchResult is a batch's final answer: how many of its messages, from
// the first, are stored (or were duplicates of stored ones).
type batchResult struct {
	stored int
	err    error
}

func newBatchAcks(nc *nats.Conn) (*batchAcks, error) {
	inbox := nc.NewInbox()
	a := &batchAcks{
		prefix:  inbox + ".",
		idBase:  inbox[strings.LastIndexByte(inbox, '.')+1:],
		waiting: map[string]*batchWait{},
	}
	var err error
	if a.sub, err = nc.Subscribe(inbox+".>", a.handle); err != nil {
		return nil, fmt.Errorf("subscribe to batch publish answers: %w", err)
	}
	// Answers are small and few (one per batch, plus flow control): the
	// default pending limits are ample, and a dropped answer only costs a
	// retry after attemptTimeout.
	return a, nil
}

// batchAnswer is the final answer to a batch: a PubAck or an error.
type batchAnswer struct {
	Error  *jetstream.APIError `json:"error,omitempty"`
	Stream string              `json:"stream"`
	Batch  string              `json:"batch,omitempty"`
	Count  int                 `json:"count,omitempty"`
}

// batchFlowErr reports that the server refused one message of a batch.
type batchFlowErr struct {
	Seq   uint64              `json:"seq"`
	Error *jetstream.APIError `json:"error"`
}

func (a *batchAcks) handle(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, a.prefix)
	if !ok {
		return
	}
	id, _, _ := strings.Cut(rest, ".")
	a.mu.Lock()
	w := a.waiting[id]
	a.mu.Unlock()
	if w == nil {
		// Answered already (a batch committed early answers its later
		// messages too), or given up on.
		return
	}
	if len(m.Data) == 0 {
		if m.Header.Get("Status") == "503" {
			// No stream listens on the subject.
			a.finish(id, batchResult{err: jetstream.ErrNoStreamResponse})
		}
		return
	}
	if bytes.HasPrefix(m.Data, []byte(`{"type":"`)) {
		// Flow control ("ack"), a gap report ("gap") or a message refused
		// ("err"): only the last one is kept, to explain a short batch.
		if bytes.HasPrefix(m.Data, []byte(`{"type":"err"`)) {
			var fe batchFlowErr
			if json.Unmarshal(m.Data, &fe) == nil && fe.Error != nil {
				a.mu.Lock()
				if w.flowErr == nil {
					w.flowErr = fe.Error
				}
				a.mu.Unlock()
			}
		}
		return
	}
	var ans batchAnswer
	if err := json.Unmarshal(m.Data, &ans); err != nil {
		a.finish(id, batchResult{err: fmt.Errorf("batch publish: bad answer: %w", err)})
		return
	}
	if ans.Error != nil {
		a.finish(id, batchResult{err: ans.Error})
		return
	}
	if ans.Batch != id {
		// A plain PubAck: the server did not take the message as part of a
		// batch. The per-message path takes over.
		a.finish(id, batchResult{err: errBatchIncomplete})
		return
	}
	a.finish(id, batchResult{stored: ans.Count})
}

// finish hands a batch its final answer, once.
func (a *batchAcks) finish(id string, r batchResult) {
	a.mu.Lock()
	w := a.waiting[id]
	delete(a.waiting, id)
	a.mu.Unlock()
	if w != nil {
		w.done <- r
	}
}

// errBatchIncomplete means the server stored only the first messages of a
// batch (it refused one, or one was lost): the others go through the
// per-message path, which reports the refusal itself.
var errBatchIncomplete = errors.New("batch publish stored part of the batch")

// publishBatches publishes msgs to a stream that allows fast batch
// publishing, in batches of at most batchChunk, and returns the messages
// not known to be stored, with the first error.
func (d *driver) publishBatches(ctx context.Context, msgs []*nats.Msg) ([]*nats.Msg, error) {
	type inFlight struct {
		msgs []*nats.Msg
		id   string
		done chan batchResult
	}
	var (
		failed   []*nats.Msg
		firstErr error
		flight   []inFlight
		pending  int
	)
	fail := func(ms []*nats.Msg, err error) {
		failed = append(failed, ms...)
		if firstErr == nil {
			firstErr = err
		}
	}
	wait := func(f inFlight) {
		t := time.NewTimer(attemptTimeout)
		defer t.Stop()
		var r batchResult
		select {
		case r = <-f.done:
		case <-t.C:
			d.batches.abandon(f.id)
			r.err = fmt.Errorf("batch publish: %w", nats.ErrTimeout)
		case <-ctx.Done():
			d.batches.abandon(f.id)
			r.err = ctx.Err()
		}
		switch {
		case r.err != nil:
			fail(f.msgs, r.err)
		case r.stored < len(f.msgs):
			fail(f.msgs[max(r.stored, 0):], errBatchIncomplete)
		}
	}
	for start := 0; start < len(msgs); start += batchChunk {
		chunk := msgs[start:min(start+batchChunk, len(msgs))]
		for len(flight) > 0 && pending+len(chunk) > batchWindow {
			wait(flight[0])
			pending -= len(flight[0].msgs)
			flight = flight[1:]
		}
		id, done, err := d.batches.send(d.nc, chunk)
		if err != nil {
			fail(msgs[start:], err)
			break
		}
		flight = append(flight, inFlight{msgs: chunk, id: id, done: done})
		pending += len(chunk)
	}
	for _, f := range flight {
		wait(f)
	}
	return failed, firstErr
}

// send publishes msgs as one batch committed by its last message and
// returns the batch id and where its answer arrives.
func (a *batchAcks) send(nc *nats.Conn, msgs []*nats.Msg) (string, chan batchResult, error) {
	id := a.idBase + strconv.FormatUint(a.next.Add(1), 36)
	done := make(chan batchResult, 1)
	a.mu.Lock()
	a.waiting[id] = &batchWait{done: done}
	a.mu.Unlock()
	// <inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<operation>.$FI:
	// flow asks for flow control every that many messages, which a batch
	// never reaches when it is alone on the stream.
	prefix := a.prefix + id + "." + strconv.Itoa(len(msgs)) + ".fail."
	for i, m := range msgs {
		op := batchOpAppend
		switch {
		case i == len(msgs)-1:
			op = batchOpCommit
		case i == 0:
			op = batchOpStart
		}
		// The reply is set on a copy: the message may be handed to the
		// per-message path later, which refuses one with a reply.
		cp := nats.Msg{Subject: m.Subject, Reply: prefix + strconv.Itoa(i+1) + "." + op + ".$FI", Header: m.Header, Data: m.Data}
		if err := nc.PublishMsg(&cp); err != nil {
			a.abandon(id)
			return "", nil, err
		}
	}
	return id, done, nil
}

// batchPublishDisabled reports whether the server refused a batch because
// the stream does not allow batch publishing (error code 10205 in
// nats-server 2.15; the description is matched too, as codes moved
// between versions).
func batchPublishDisabled(err *jetstream.APIError) bool {
	d := strings.ToLower(err.Description)
	return err.ErrorCode == 10205 || strings.Contains(d, "batch publish is disabled") || strings.Contains(d, "batch publish not enabled")
}

// abandon stops waiting for a batch's answer.
func (a *batchAcks) abandon(id string) {
	a.mu.Lock()
	delete(a.waiting, id)
	a.mu.Unlock()
}
