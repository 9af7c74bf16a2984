package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// deliveryState is what JetStream does not keep about a message that
// failed or was given back: when it first and last failed, its last
// error, when its delayed retry is due, and how many of its deliveries
// never reached a consumer. A message that failed has a state of its own
// in the state stream, one subject per (queue, stream sequence), written
// before the nak it describes and removed once the message is settled for
// good; messages given back share one record a give-back (see
// givenBackRecord). Messages that are neither given back nor fail never
// get one, so the happy path costs nothing.
//
// It is how a give-back is undone: JetStream counts every delivery, and
// has no way to take one back, so GiveBack records the delivery as
// Uncounted before its nak, and the attempt of a later delivery is
// JetStream's count less the uncounted ones.
type deliveryState struct {
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	LastFailureAt  time.Time `json:"last_failure_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// Waiting is true from a nack until the message is delivered again:
	// the message is then in the queue, not in a worker's hands.
	Waiting bool `json:"waiting,omitempty"`
	// RetryAt is when a waiting message becomes deliverable again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Deliveries is JetStream's delivery count when the state was written.
	Deliveries uint64 `json:"deliveries"`
	// Uncounted counts deliveries that never reached a consumer (given
	// back): they are not attempts, so an attempt is JetStream's delivery
	// count minus these.
	Uncounted uint64 `json:"uncounted,omitempty"`
	// Earlier counts the deliveries of the queue's consumers before the
	// one that delivered the message last: a consumer deleted (by an
	// operator, or by a restart with consumer_storage=memory) and created
	// again counts from 1 (see loadState).
	Earlier uint64 `json:"earlier,omitempty"`
	// PublishedAt is the message's time in its queue, for the age of the
	// oldest pending message.
	PublishedAt time.Time `json:"published_at,omitzero"`
}

// attempts returns how many deliveries of the message reached a
// consumer, given JetStream's delivery count.
func (s deliveryState) attempts(numDelivered uint64) int {
	all := s.Earlier + numDelivered
	if s.Uncounted >= all {
		return 0
	}
	return int(all - s.Uncounted)
}

// stateWrite is a delivery state to store, for the message of a delivery.
type stateWrite struct {
	dv *delivery
	ds deliveryState
}

// stateSource says where a delivery's state came from.
type stateSource uint8

const (
	noState     stateSource = iota // a first delivery, or the state is unknown
	ownState                       // the message's own state in the state stream
	recordState                    // a give-back record's entry
)

// loadState fills dv's state from the cache of given-back messages or the
// message's own state, and says whether the give-back records are still
// to be looked at. A message delivered for the first time has none,
// unless an earlier consumer of the queue delivered it.
func (d *driver) loadState(ctx context.Context, q *queueEntry, dv *delivery) (lookRecords bool) {
	if dv.delivered <= 1 && !q.earlier.has(ctx, d, q, dv) {
		return false
	}
	if c, ok := d.givenBack.take(q.name, dv.seq, dv.delivered); ok {
		dv.state, dv.from, dv.record = c.ds, c.from, c.record
		return false
	}
	ds, found, err := d.getState(ctx, q.name, dv.seq)
	if err != nil {
		d.log.Warn("reading delivery state failed; attempt and first failure time unknown", "queue", q.name, "error", err)
		return false
	}
	if !found {
		return dv.delivered > 1
	}
	if ds.Deliveries >= dv.delivered {
		// Written before the consumer that delivered it now was
		// created, which counts from 1 again.
		ds.Earlier += ds.Deliveries
	}
	// Newer than any record entry of the message: see givenBackRecord.
	dv.state, dv.from = ds, ownState
	return false
}

// earlierStates are the messages of a queue that had a delivery state
// when a message published before the queue's consumer was created came
// for the first time: such a message may have been delivered by an
// earlier consumer, and its state is read only if it has one. Read once
// per consumer (a listing of the state stream's subjects); nothing is read
// while every message is younger than the consumer, as when the consumer
// was never deleted.
type earlierStates struct {
	mu     sync.Mutex
	loaded bool
	seqs   map[uint64]bool
}

// has reports whether dv's message may have a state from an earlier
// consumer of q.
func (e *earlierStates) has(ctx context.Context, d *driver, q *queueEntry, dv *delivery) bool {
	if !dv.published.Before(q.created) {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		seqs, err := d.stateSeqs(ctx, q.name)
		if err != nil {
			d.log.Warn("listing delivery states failed; attempts of messages delivered before the queue's consumer was created count from 1", "queue", q.name, "error", err)
		}
		e.seqs, e.loaded = seqs, true
	}
	return e.seqs[dv.seq]
}

// loadRecordStates fills the states of dvs from queue's give-back records.
func (d *driver) loadRecordStates(ctx context.Context, queue string, dvs []*delivery) {
	states, err := d.recordStates(ctx, queue)
	if err != nil {
		d.log.Warn("reading delivery state failed; attempt unknown", "queue", queue, "error", err)
		return
	}
	for _, dv := range dvs {
		if ds, ok := states[dv.seq]; ok && ds.Deliveries < dv.delivered {
			dv.state, dv.from = ds, recordState
		}
	}
}

// getState returns the state of a queue's message, and whether there is one.
func (d *driver) getState(ctx context.Context, queue string, seq uint64) (deliveryState, bool, error) {
	var ds deliveryState
	found, err := d.readLast(ctx, "read delivery state", d.names.stateSubject(queue, seq), &ds)
	if err != nil {
		return deliveryState{}, false, fmt.Errorf("delivery state of %s #%d: %w", queue, seq, err)
	}
	return ds, found, nil
}

// readLast decodes the last message of a state-stream subject into v, and
// says whether there is one.
func (d *driver) readLast(ctx context.Context, what, subject string, v any) (bool, error) {
	var m *jetstream.RawStreamMsg
	err := d.retry(ctx, what, requestTry, func(ctx context.Context) error {
		var err error
		m, err = d.stateStream.GetLastMsgForSubject(ctx, subject)
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(m.Data, v)
}

// putStates stores states all at once (asynchronously, then every ack
// awaited), retrying the writes that failed transiently (each round
// bounded by requestTry) until ctx ends, and reports which were stored; the
// others are logged. A state stored becomes its delivery's.
func (d *driver) putStates(ctx context.Context, queue string, ws []stateWrite) []bool {
	stored := make([]bool, len(ws))
	todo := make([]int, len(ws))
	for i := range todo {
		todo[i] = i
	}
	backoff := pubsub.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	for {
		var (
			again   []int
			lastErr error
		)
		retry := func(i int, err error) {
			if !transient(err) {
				d.log.Warn("writing delivery state failed", "queue", queue, "error", err)
				return
			}
			again, lastErr = append(again, i), err
		}
		tctx, cancel := context.WithTimeout(ctx, requestTry)
		futures := make([]jetstream.PubAckFuture, len(todo))
		for j, i := range todo {
			b, _ := json.Marshal(ws[i].ds) // plain fields always marshal
			f, err := d.js.PublishAsync(d.names.stateSubject(queue, ws[i].dv.seq), b, jetstream.WithExpectStream(d.names.stateStream()))
			if err != nil {
				retry(i, err)
				continue
			}
			futures[j] = f
		}
		for j, f := range futures {
			if f == nil {
				continue
			}
			i := todo[j]
			select {
			case <-f.Ok():
				stored[i] = true
				ws[i].dv.state, ws[i].dv.from = ws[i].ds, ownState
			case err := <-f.Err():
				retry(i, err)
			case <-tctx.Done():
				retry(i, tctx.Err())
			}
		}
		cancel()
		if len(again) == 0 {
			return stored
		}
		if backoff.Wait(ctx) != nil {
			d.log.Warn("writing delivery state failed", "queue", queue, "states", len(again), "error", lastErr)
			return stored
		}
		todo = again
	}
}

// removeStates deletes, in the background, the states of messages
// settled for good (acked or dead-lettered), so that settling a message
// that once failed or was given back costs its consumer no round trip.
// Close waits for them. A state left behind (a crash) is harmless: it is
// not waiting, so Stats and ListPending skip it.
func (d *driver) removeStates(queue string, dvs []*delivery) {
	if len(dvs) == 0 {
		return
	}
	d.removals.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		for _, dv := range dvs {
			if err := d.stateStream.Purge(ctx, jetstream.WithPurgeSubject(d.names.stateSubject(queue, dv.seq))); err != nil {
				d.log.Warn("removing delivery state failed", "queue", queue, "error", err)
			}
		}
	})
}

// listStates returns the states of a queue's messages by stream sequence.
func (d *driver) listStates(ctx context.Context, queue string) (map[uint64]deliveryState, error) {
	seqs, err := d.stateSeqs(ctx, queue)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]deliveryState, len(seqs))
	for seq := range seqs {
		ds, found, err := d.getState(ctx, queue, seq)
		if err != nil {
			return nil, err
		}
		if found {
			out[seq] = ds
		}
	}
	return out, nil
}

// stateSeqs returns the messages of a queue that have a state of their own.
func (d *driver) stateSeqs(ctx context.Context, queue string) (map[uint64]bool, error) {
	info, err := d.stateStream.Info(ctx, jetstream.WithSubjectFilter(d.names.stateQueueFilter(queue)))
	if err != nil {
		return nil, fmt.Errorf("delivery state of %s: %w", queue, err)
	}
	seqs := make(map[uint64]bool, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		if seq, ok := seqOfStateSubject(subject); ok {
			seqs[seq] = true
		}
	}
	return seqs, nil
}

// givenBackCache remembers the delivery state this driver wrote for the
// messages it gave back (received, never handed out), so that when one
// comes back to this driver, as it usually does, reading the state costs
// no round trip. An entry is only used for the very next delivery of its
// message (JetStream's delivery count one higher than when it was
// written): a delivery elsewhere in between may have changed the state.
type givenBackCache struct {
	mu sync.Mutex
	m  map[givenBackKey]cachedState
}

// cachedState is a state written at a give-back: the message's own, or
// an entry of a record of this driver's.
type cachedState struct {
	ds     deliveryState
	from   stateSource
	record *ownRecord
}

type givenBackKey struct {
	queue string
	seq   uint64
}

// givenBackCacheMax bounds the cache; entries of messages that went to
// another process are never taken, and the whole cache is dropped when
// full (it is only a shortcut).
const givenBackCacheMax = 1 << 16

func (c *givenBackCache) add(queue string, seq uint64, cs cachedState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= givenBackCacheMax {
		c.m = map[givenBackKey]cachedState{}
	}
	c.m[givenBackKey{queue, seq}] = cs
}

// take returns and forgets the state written when the message was given
// back, if this delivery is the next one after that.
func (c *givenBackCache) take(queue string, seq, numDelivered uint64) (cachedState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := givenBackKey{queue, seq}
	cs, ok := c.m[k]
	if !ok {
		return cachedState{}, false
	}
	delete(c.m, k)
	if cs.ds.Deliveries+1 != numDelivered {
		return cachedState{}, false
	}
	return cs, true
}
