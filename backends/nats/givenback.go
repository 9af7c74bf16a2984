package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// givenBackRecord is the delivery states of the messages of one give-back,
// in one message of the state stream (subject names.recordSubject), so
// that a give-back costs one state write, not one a message. A message
// given back that comes back to the same driver, as it usually does,
// costs nothing more: the driver knows the state (givenBackCache), and the
// record goes when the last of its messages is settled. What it replaces,
// a state of each message's own written at the give-back, rewritten when
// the message came back and removed when it was acked, took three state
// stream requests a message; after a restart of 4 workers, the first 5,000
// messages ran at 0.5 of the consume rate (bench/, issue 16).
//
// Messages in a record have no failure recorded: a message with a state of
// its own keeps it when given back (see GiveBack), and a failure is
// always written as the message's own state. Which state of a message is
// the newest: its own, if it has one; else the record entry with the most
// deliveries.
type givenBackRecord struct {
	// At is when the messages were given back: they were due again then.
	At time.Time `json:"at"`
	// Messages holds, a message each: its stream sequence, JetStream's
	// delivery count when it was given back, and its uncounted deliveries
	// (that one included).
	Messages [][3]uint64 `json:"messages"`
}

// recordMax bounds the messages of one record (about 40 bytes each), well
// under JetStream's default 1 MiB payload; a larger give-back writes more.
const recordMax = 8192

// recordSweepEvery is how often at most a driver giving back messages of a
// queue removes the queue's records whose messages are all gone (settled by
// another process, or written by one that died).
const recordSweepEvery = 30 * time.Second

// states returns the record's messages' delivery states by sequence.
func (r givenBackRecord) states() map[uint64]deliveryState {
	out := make(map[uint64]deliveryState, len(r.Messages))
	for _, m := range r.Messages {
		out[m[0]] = deliveryState{Waiting: true, RetryAt: r.At, Deliveries: m[1], Uncounted: m[2]}
	}
	return out
}

// ownRecord is a record this driver wrote, with how many of its messages
// are open: not settled for good, nor given a newer state, by this
// driver. The last one closed removes the record.
type ownRecord struct {
	queue, subject string
	open           atomic.Int64
}

// records is what a driver keeps about give-back records: the ones read
// (a record never changes), the messages of records in its hands (an admin
// read in this process counts them in flight, not waiting), and when it
// last swept each queue's records.
type records struct {
	mu    sync.Mutex
	read  map[string]givenBackRecord // by subject
	held  map[givenBackKey]struct{}
	swept map[string]time.Time // by queue
}

// readMax bounds the records remembered (they are only a shortcut).
const readMax = 1024

func (rs *records) hold(queue string, seq uint64, on bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.held == nil {
		rs.held = map[givenBackKey]struct{}{}
	}
	if on {
		rs.held[givenBackKey{queue, seq}] = struct{}{}
	} else {
		delete(rs.held, givenBackKey{queue, seq})
	}
}

func (rs *records) isHeld(queue string, seq uint64) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.held[givenBackKey{queue, seq}]
	return ok
}

// sweepDue says whether queue's records are due for a sweep, and counts
// it as swept now if so.
func (rs *records) sweepDue(queue string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.swept == nil {
		rs.swept = map[string]time.Time{}
	}
	if time.Since(rs.swept[queue]) < recordSweepEvery {
		return false
	}
	rs.swept[queue] = time.Now()
	return true
}

// writeRecords stores the states of messages given back as records, and
// returns the record each message went into (nil: not stored).
func (d *driver) writeRecords(ctx context.Context, queue string, ws []stateWrite) []*ownRecord {
	out := make([]*ownRecord, len(ws))
	now := time.Now()
	for start := 0; start < len(ws); start += recordMax {
		chunk := ws[start:min(start+recordMax, len(ws))]
		rec := givenBackRecord{At: now, Messages: make([][3]uint64, len(chunk))}
		for i, w := range chunk {
			rec.Messages[i] = [3]uint64{w.dv.seq, w.ds.Deliveries, w.ds.Uncounted}
		}
		own := &ownRecord{queue: queue, subject: d.names.recordSubject(queue, nuid.Next())}
		own.open.Store(int64(len(chunk)))
		b, _ := json.Marshal(rec) // plain fields always marshal
		err := d.retry(ctx, "write give-back record", requestTry, func(ctx context.Context) error {
			_, err := d.js.Publish(ctx, own.subject, b, jetstream.WithExpectStream(d.names.stateStream()))
			return err
		})
		if err != nil {
			d.log.Warn("writing delivery state failed", "queue", queue, "states", len(chunk), "error", err)
			continue
		}
		for i := range chunk {
			out[start+i] = own
		}
	}
	return out
}

// closeRecord says that dv's message no longer needs the record of this
// driver its state came from (settled for good, or given a newer state);
// the last message of a record to close removes it.
func (d *driver) closeRecord(dv *delivery) {
	own := dv.record
	if own == nil {
		return
	}
	dv.record = nil
	if own.open.Add(-1) == 0 {
		d.removals.Go(func() { d.removeRecord(own.queue, own.subject) })
	}
}

func (d *driver) removeRecord(queue, subject string) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := d.stateStream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		d.log.Warn("removing delivery state failed", "queue", queue, "error", err)
		return
	}
	d.records.mu.Lock()
	delete(d.records.read, subject)
	d.records.mu.Unlock()
}

// recordStates returns the newest state in queue's records of each
// message in them.
func (d *driver) recordStates(ctx context.Context, queue string) (map[uint64]deliveryState, error) {
	recs, err := d.readRecords(ctx, queue)
	if err != nil {
		return nil, err
	}
	out := map[uint64]deliveryState{}
	for _, rec := range recs {
		for seq, ds := range rec.states() {
			if old, ok := out[seq]; !ok || ds.Deliveries > old.Deliveries {
				out[seq] = ds
			}
		}
	}
	return out, nil
}

// readRecords returns queue's records by subject.
func (d *driver) readRecords(ctx context.Context, queue string) (map[string]givenBackRecord, error) {
	info, err := d.stateStream.Info(ctx, jetstream.WithSubjectFilter(d.names.recordFilter(queue)))
	if err != nil {
		return nil, fmt.Errorf("give-back records of %s: %w", queue, err)
	}
	out := make(map[string]givenBackRecord, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		d.records.mu.Lock()
		rec, ok := d.records.read[subject]
		d.records.mu.Unlock()
		if !ok {
			if rec, ok, err = d.getRecord(ctx, subject); err != nil {
				return nil, fmt.Errorf("give-back records of %s: %w", queue, err)
			}
		}
		if ok {
			out[subject] = rec
		}
	}
	return out, nil
}

// getRecord reads a record, false if it is gone (removed meanwhile).
func (d *driver) getRecord(ctx context.Context, subject string) (givenBackRecord, bool, error) {
	var rec givenBackRecord
	found, err := d.readLast(ctx, "read give-back record", subject, &rec)
	if err != nil {
		return givenBackRecord{}, false, fmt.Errorf("%s: %w", subject, err)
	}
	if !found {
		return givenBackRecord{}, false, nil
	}
	d.records.mu.Lock()
	if d.records.read == nil || len(d.records.read) >= readMax {
		d.records.read = map[string]givenBackRecord{}
	}
	d.records.read[subject] = rec
	d.records.mu.Unlock()
	return rec, true, nil
}

// sweepRecords removes, in the background, queue's records whose messages
// are all gone from the queue (acked or dead-lettered: the stream is a
// work queue), at most every recordSweepEvery.
func (d *driver) sweepRecords(queue string) {
	if !d.records.sweepDue(queue) {
		return
	}
	d.removals.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		if err := d.sweep(ctx, queue); err != nil {
			d.log.Warn("removing delivery state failed", "queue", queue, "error", err)
		}
	})
}

func (d *driver) sweep(ctx context.Context, queue string) error {
	recs, err := d.readRecords(ctx, queue)
	if err != nil || len(recs) == 0 {
		return err
	}
	st, err := d.queueStream(ctx, queue)
	if err != nil {
		return err
	}
	var floor uint64 // what the consumer acked up to: gone without a read
	if cons, err := st.Consumer(ctx, consumerName); err == nil {
		floor = cons.CachedInfo().AckFloor.Stream
	}
	gone := func(seq uint64) (bool, error) {
		if seq <= floor {
			return true, nil
		}
		_, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, nil
		}
		return false, err
	}
	for _, subject := range slices.Sorted(maps.Keys(recs)) {
		all := true
		for _, m := range recs[subject].Messages {
			g, err := gone(m[0])
			if err != nil {
				return err
			}
			if !g {
				all = false
				break
			}
		}
		if all {
			d.removeRecord(queue, subject)
		}
	}
	return nil
}
