package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/quantumflow/quantumflow/pubsub"
)

// lease is the driver's handle on a claimed message (Received.AckID).
type lease struct {
	seq     int64
	owner   string      // locked_by of the claim
	settled atomic.Bool // handed to Settle or GiveBack: no longer ours to extend
}

// queueState is what the backend knows of a queue it receives from: who
// waits for its messages, and when the next scheduled one is due.
type queueState struct {
	// claimMu is held from the start of a claim until its rows are locked:
	// claims started together would race for the same rows, each walking
	// past the rows the other locks (SKIP LOCKED): more CPU per message
	// (11-12 against 10.5-11 microseconds, four subscriptions), and the
	// later claim could take rows before the earlier one.
	claimMu sync.Mutex

	mu        sync.Mutex
	wakes     uint64        // wake-ups so far (notifications, local publishes, requeues)
	woken     chan struct{} // closed by the next wake-up or due time, made by watch
	due       time.Time     // when a scheduled message becomes ready, if known
	nextDueAt time.Time     // when nextDue may ask the database again
	waiting   int           // receives waiting for messages (see poll)
	drained   uint64        // wake-ups before the last claim that took less than it asked, plus one
	claims    atomic.Uint64 // claims made (tests count them)

	claimFloor claimFloor // where the next claim starts reading (floor.go)
}

func (d *Driver) queueState(queue string) *queueState {
	d.queuesMu.Lock()
	defer d.queuesMu.Unlock()
	qs := d.queues[queue]
	if qs == nil {
		qs = &queueState{}
		d.queues[queue] = qs
	}
	return qs
}

// receiving returns the state of a queue this backend receives from, or
// nil.
func (d *Driver) receiving(queue string) *queueState {
	d.queuesMu.Lock()
	defer d.queuesMu.Unlock()
	return d.queues[queue]
}

// wake tells those waiting for the queue's messages that some may be
// ready.
func (d *Driver) wake(queue string) {
	if qs := d.receiving(queue); qs != nil {
		qs.signal(true)
	}
}

// returned tells them that messages are back in the queue, behind its
// claim floor perhaps: the next claim reads it in full.
func (d *Driver) returned(queue string) {
	if qs := d.receiving(queue); qs != nil {
		qs.mu.Lock()
		qs.claimFloor.rewind(time.Now())
		qs.mu.Unlock()
		qs.signal(true)
	}
}

// wakeAt tells them that a message becomes ready at t.
func (d *Driver) wakeAt(queue string, t time.Time) {
	if qs := d.receiving(queue); qs != nil {
		qs.setDue(t)
		qs.signal(false)
	}
}

// wakeAll wakes every queue: notifications were lost.
func (d *Driver) wakeAll() {
	d.queuesMu.Lock()
	defer d.queuesMu.Unlock()
	for _, qs := range d.queues {
		qs.signal(true)
	}
}

// signal wakes the waiters; count says whether messages may be ready now
// (rather than a due time having changed).
func (s *queueState) signal(count bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if count {
		s.wakes++
	}
	if s.woken != nil {
		close(s.woken)
		s.woken = nil
	}
}

// watch returns the wake-ups so far and a channel closed by the next.
func (s *queueState) watch() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.woken == nil {
		s.woken = make(chan struct{})
	}
	return s.wakes, s.woken
}

// wakeUps returns the wake-ups so far.
func (s *queueState) wakeUps() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakes
}

// wokenSince returns the wake-ups so far if the queue was woken since
// watch returned wakes, noClaim if only its due time changed.
func (s *queueState) wokenSince(wakes uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wakes == wakes {
		return noClaim
	}
	return s.wakes
}

// drainedSince reports whether a claim that took less than it asked
// began after the wake-ups seen (and so took, or saw taken, every
// message they announced), and returns the wake-ups so far.
func (s *queueState) drainedSince(seen uint64) (bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return seen < s.drained, s.wakes
}

// tookLess records that a claim that began after wake-ups took less
// than it asked.
func (s *queueState) tookLess(wakes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drained = max(s.drained, wakes+1)
}

// setDue records that a message becomes ready at t; it may be behind the
// claim floor.
func (s *queueState) setDue(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due.IsZero() || t.Before(s.due) {
		s.due = t
	}
	s.claimFloor.rewind(t)
}

// dueTimer returns a timer firing when the next scheduled message is due,
// or nil.
func (s *queueState) dueTimer() *time.Timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due.IsZero() {
		return nil
	}
	in := time.Until(s.due)
	if in <= 0 {
		s.due = time.Time{}
	}
	return time.NewTimer(max(in, 0))
}

// ReceiveBatch claims up to max ready messages of queue. When none is
// ready it waits for a notification, a local publish or requeue, the
// next scheduled message, or the poller finding some (see poll), and
// claims again.
func (d *Driver) ReceiveBatch(ctx context.Context, queue string, max int) ([]*pubsub.Received, error) {
	d.startConsuming()
	qs := d.queueState(queue)
	// A claim follows the wake-ups so far: when a claim that began after
	// them took less than it asked, there is nothing to claim until the
	// next (see claim).
	seen := qs.wakeUps()
	for {
		wakes, woken := qs.watch()
		if seen != noClaim {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			got, err := d.claim(ctx, qs, queue, max, seen)
			if err != nil || len(got) > 0 {
				return got, err
			}
			if due, ok := d.nextDue(qs, queue); ok {
				qs.setDue(due)
			}
		}
		var err error
		if seen, err = d.await(ctx, qs, wakes, woken); err != nil {
			return nil, err
		}
	}
}

// The wake-ups a claim follows (see claim), or one of these.
const (
	alwaysClaim uint64 = math.MaxUint64     // claim whatever claims came before
	noClaim     uint64 = math.MaxUint64 - 1 // no reason to claim
)

// await waits for a reason to claim again: it returns the wake-ups seen
// after a wake-up, alwaysClaim at the next scheduled message's due time,
// noClaim after any other signal, and ctx's error.
func (d *Driver) await(ctx context.Context, qs *queueState, wakes uint64, woken <-chan struct{}) (uint64, error) {
	var dueC <-chan time.Time
	if t := qs.dueTimer(); t != nil {
		defer t.Stop()
		dueC = t.C
	}
	qs.setWaiting(1)
	defer qs.setWaiting(-1)
	select {
	case <-woken:
		return qs.wokenSince(wakes), nil
	case <-dueC:
		return alwaysClaim, nil
	case <-ctx.Done():
		return noClaim, ctx.Err()
	case <-d.ctx.Done():
		return noClaim, pubsub.ErrClosed
	}
}

// setWaiting counts a receive in (1) or out (-1) of waiting.
func (s *queueState) setWaiting(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting += n
}

// claimSettings steers the claim of the same transaction to the claim
// index (see claim), and has it use its generic plan: a custom plan per
// claim cost 75 microseconds of planning every time, the generic plan is
// the same index walk.
const claimSettings = `SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)`

// claimTimeout bounds one claim's round trip.
const claimTimeout = 30 * time.Second

// claimSeq numbers claims, to make lease owners unique.
var claimSeq atomic.Uint64

// claim leases up to n messages in one round trip and one commit: BEGIN,
// the settlements waiting to ride along (with sync_acks), the claim
// settings, the claim, COMMIT. It runs to the end whatever the caller's
// context: what it claimed is returned.
//
// Once it holds its rows it tells the engine (pubsub.Holding with
// holdCtx), which may then start the next claim of the queue.
//
// It claims nothing when a claim of the queue that began after the
// wake-ups the caller saw (seen, or alwaysClaim) took less than it
// asked: several receives woken by one notification claimed one after
// the other, and all but the first came back empty (a tenth of the
// claims of the instances scenario).
func (d *Driver) claim(holdCtx context.Context, qs *queueState, queue string, n int, seen uint64) ([]*pubsub.Received, error) {
	ctx, cancel := context.WithTimeout(d.workCtx, claimTimeout)
	defer cancel()
	if err := d.holding(ctx); err != nil {
		return nil, d.wrapErr(err)
	}
	qs.claimMu.Lock()
	var unlockOnce sync.Once
	unlock := func() { unlockOnce.Do(qs.claimMu.Unlock) }
	defer unlock()
	drained, wakes := qs.drainedSince(seen)
	if drained {
		return nil, nil
	}
	qs.claims.Add(1)
	owner := d.instance + ":" + strconv.FormatUint(claimSeq.Add(1), 36)

	pb := &pgx.Batch{}
	pb.Queue("BEGIN")
	d.queueSettleCommitMode(pb)
	sb := d.settler.takeForClaim()
	settles := 0
	if sb != nil {
		settles = sb.queue(pb, &d.q)
	}
	// The claim must walk the queue index in delivery order and stop
	// after n rows. Without fresh statistics (a new table loaded faster
	// than autovacuum analyzes it) the planner guesses a handful of rows
	// and sorts the whole queue instead: 2 ms became 70 ms at 100k rows.
	pb.Queue(claimSettings)
	start := time.Now()
	floor, floored := qs.floor(start)
	if floored {
		pb.Queue(d.q.claimFrom, queue, n, d.cfg.lease.Milliseconds(), owner, d.instance, floor.priority, floor.from)
	} else {
		pb.Queue(d.q.claim, queue, n, d.cfg.lease.Milliseconds(), owner, d.instance)
	}
	pb.Queue("COMMIT")
	br := d.pool.SendBatch(ctx, pb)
	_, err := br.Exec() // BEGIN
	for i := 0; err == nil && i < settles+1+d.settleCommitStatements(); i++ {
		_, err = br.Exec()
	}
	var got []*pubsub.Received
	if err == nil {
		got, err = d.scanClaimed(br, queue, n, owner)
	}
	if err == nil {
		qs.claimed(got, !floored, start, time.Now())
		if len(got) < n {
			qs.tookLess(wakes)
		}
		unlock() // the rows are locked: the next claim may start
		if len(got) > 0 {
			pubsub.Holding(holdCtx)
		}
		_, err = br.Exec() // COMMIT
	}
	committed := err == nil
	if cerr := br.Close(); err == nil && cerr != nil {
		// The commit's answer came: the rows are leased to this backend
		// whatever broke the connection after it (a server shutting down).
		d.log.Debug("quantumflow: postgres: connection broke after a claim committed", "queue", queue, "error", d.wrapErr(cerr))
	}
	if !committed {
		// The claim may have committed without its answer coming back:
		// its leases, unknown to the engine, would expire unextended
		// and unparked, where only a full reap finds them.
		d.lostClaim()
		if sb != nil {
			d.settler.retryLater(sb, isConnectionError(err))
		}
		return nil, d.wrapErr(err)
	}
	if sb != nil {
		d.settler.committed(sb)
	}
	return got, nil
}

// scanClaimed reads the claimed rows into messages in delivery order
// (UPDATE ... RETURNING returns them in no particular order).
func (d *Driver) scanClaimed(br pgx.BatchResults, queue string, n int, owner string) ([]*pubsub.Received, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// One allocation each for the claim's messages and leases (they are
	// settled and forgotten together, give or take a few), not one per
	// message.
	msgs := make([]pubsub.Received, 0, n)
	leases := make([]lease, 0, n)
	var (
		metadata   []byte
		priority   int32
		retryCount int32
		createdAt  time.Time
		firstFail  pgtype.Timestamptz
	)
	for rows.Next() {
		msgs = append(msgs, pubsub.Received{})
		leases = append(leases, lease{owner: owner})
		m, l := &msgs[len(msgs)-1], &leases[len(leases)-1]
		if err := rows.Scan(&l.seq, &m.ID, &m.Payload, &metadata, &priority, &retryCount, &createdAt, &firstFail); err != nil {
			return nil, err
		}
		m.Priority = pubsub.Priority(priority)
		m.Attempt = int(retryCount) + 1
		m.Seq = createdAt.UnixMicro() // delivery order: created_at (microseconds), then seq
		m.AckID = l
		if firstFail.Valid {
			m.FirstFailureAt = firstFail.Time
		}
		if metadata != nil {
			if err := json.Unmarshal(metadata, &m.Metadata); err != nil {
				d.log.Warn("quantumflow: postgres: bad metadata", "queue", queue, "id", m.ID, "error", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*pubsub.Received, len(msgs))
	for i := range msgs {
		out[i] = &msgs[i]
	}
	slices.SortFunc(out, func(a, b *pubsub.Received) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.Seq, b.Seq),
			cmp.Compare(a.AckID.(*lease).seq, b.AckID.(*lease).seq))
	})
	return out, nil
}

// nextDue asks when the queue's next scheduled message becomes ready. It
// reads every waiting row of the queue: at most once per poll interval.
// Retries scheduled by this backend set the due time anyway (wakeAt).
func (d *Driver) nextDue(qs *queueState, queue string) (time.Time, bool) {
	now := time.Now()
	qs.mu.Lock()
	skip := now.Before(qs.nextDueAt)
	if !skip {
		qs.nextDueAt = now.Add(d.cfg.pollInterval)
	}
	qs.mu.Unlock()
	if skip {
		return time.Time{}, false
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	var due *time.Time
	if err := d.pool.QueryRow(ctx, d.q.nextDue, queue).Scan(&due); err != nil || due == nil {
		return time.Time{}, false
	}
	return *due, true
}
