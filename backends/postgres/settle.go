package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// settleBatch is settlements waiting to be written: acks (delete),
// requeues (nack, release) and moves to the dead-letter queue, as the
// statements' arrays.
type settleBatch struct {
	acks []int64

	rqSeq     []int64
	rqOwner   []string
	rqDelayMS []int64
	rqCounted []int32
	rqError   []*string
	rqFailed  []bool
	rqQueue   []string // not written: who to wake afterwards

	dlSeq     []int64
	dlError   []string
	dlHandler []string
	dlService []string
}

func (b *settleBatch) len() int { return len(b.acks) + len(b.rqSeq) + len(b.dlSeq) }

func (b *settleBatch) merge(o *settleBatch) {
	b.acks = append(b.acks, o.acks...)
	b.rqSeq = append(b.rqSeq, o.rqSeq...)
	b.rqOwner = append(b.rqOwner, o.rqOwner...)
	b.rqDelayMS = append(b.rqDelayMS, o.rqDelayMS...)
	b.rqCounted = append(b.rqCounted, o.rqCounted...)
	b.rqError = append(b.rqError, o.rqError...)
	b.rqFailed = append(b.rqFailed, o.rqFailed...)
	b.rqQueue = append(b.rqQueue, o.rqQueue...)
	b.dlSeq = append(b.dlSeq, o.dlSeq...)
	b.dlError = append(b.dlError, o.dlError...)
	b.dlHandler = append(b.dlHandler, o.dlHandler...)
	b.dlService = append(b.dlService, o.dlService...)
}

// pgText makes s storable as PostgreSQL text, which must be valid UTF-8
// without NUL characters. Handler errors can be anything; one that the
// server rejected would fail its whole batch of settlements, again and
// again.
func pgText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// sortBySeq orders the batch's rows by seq, so that concurrent
// transactions lock shared rows in the same order and cannot deadlock.
func (b *settleBatch) sortBySeq() {
	slices.Sort(b.acks)
	if !slices.IsSorted(b.rqSeq) {
		idx := make([]int, len(b.rqSeq))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(b.rqSeq[x], b.rqSeq[y]) })
		b.rqSeq = permute(b.rqSeq, idx)
		b.rqOwner = permute(b.rqOwner, idx)
		b.rqDelayMS = permute(b.rqDelayMS, idx)
		b.rqCounted = permute(b.rqCounted, idx)
		b.rqError = permute(b.rqError, idx)
		b.rqFailed = permute(b.rqFailed, idx)
		b.rqQueue = permute(b.rqQueue, idx)
	}
	if !slices.IsSorted(b.dlSeq) {
		idx := make([]int, len(b.dlSeq))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(b.dlSeq[x], b.dlSeq[y]) })
		b.dlSeq = permute(b.dlSeq, idx)
		b.dlError = permute(b.dlError, idx)
		b.dlHandler = permute(b.dlHandler, idx)
		b.dlService = permute(b.dlService, idx)
	}
}

func permute[T any](s []T, idx []int) []T {
	out := make([]T, len(s))
	for i, j := range idx {
		out[i] = s[j]
	}
	return out
}

// queue adds the batch's statements to pb and returns how many it added.
func (b *settleBatch) queue(pb *pgx.Batch, q *queries) int {
	b.sortBySeq()
	n := 0
	if len(b.dlSeq) > 0 {
		pb.Queue(q.deadLetter, b.dlSeq, b.dlError, b.dlHandler, b.dlService)
		n++
	}
	if len(b.rqSeq) > 0 {
		pb.Queue(q.requeue, b.rqSeq, b.rqOwner, b.rqDelayMS, b.rqCounted, b.rqError, b.rqFailed)
		n++
	}
	if len(b.acks) > 0 {
		pb.Queue(q.ack, b.acks)
		n++
	}
	return n
}

// settler collects settlements and writes them in batches: when ackDelay
// has passed since the oldest one, when a batch is full, piggybacked on
// the next claim of a fetcher, or on demand (Stats, Close). Writing late is
// safe: until then the messages stay leased to this backend, and every
// statement is idempotent, so a batch whose commit outcome is unknown is
// simply written again.
type settler struct {
	d *Driver

	mu    sync.Mutex
	cur   settleBatch
	since time.Time // when cur got its first settlement
	// broken is set when a batch failed for a reason other than the
	// connection: settlements then stay out of claims, so that they
	// cannot stall consumption.
	broken bool

	kick    chan struct{}
	flushMu sync.Mutex // one standalone write at a time
}

func newSettler(d *Driver) *settler {
	return &settler{d: d, kick: make(chan struct{}, 1)}
}

func (s *settler) add(f func(b *settleBatch)) {
	s.mu.Lock()
	first := s.cur.len() == 0
	if first {
		s.since = time.Now()
	}
	f(&s.cur)
	// The writer sleeps while nothing waits: wake it to time the first
	// settlement's ackDelay, or to write a full batch now.
	kick := first || s.cur.len() >= s.d.cfg.batch || s.d.cfg.ackDelay == 0
	s.mu.Unlock()
	if kick {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// ack deletes a message.
func (s *settler) ack(c *claimed) {
	s.add(func(b *settleBatch) { b.acks = append(b.acks, c.seq) })
}

// requeue puts a message back in its queue, visible after delay. counted
// says whether this delivery counts as an attempt (it does for every
// message that was handed out); failed records a failure (first/last
// failure times, errText as last error).
func (s *settler) requeue(c *claimed, delay time.Duration, counted bool, failed bool, errText string) {
	s.add(func(b *settleBatch) { b.addRequeue(c, delay, counted, failed, errText) })
}

func (b *settleBatch) addRequeue(c *claimed, delay time.Duration, counted bool, failed bool, errText string) {
	var errp *string
	if errText != "" {
		errText = pgText(errText)
		errp = &errText
	}
	var n int32
	if counted {
		n = 1
	}
	b.rqSeq = append(b.rqSeq, c.seq)
	b.rqOwner = append(b.rqOwner, c.owner)
	b.rqDelayMS = append(b.rqDelayMS, delay.Milliseconds())
	b.rqCounted = append(b.rqCounted, n)
	b.rqError = append(b.rqError, errp)
	b.rqFailed = append(b.rqFailed, failed)
	b.rqQueue = append(b.rqQueue, c.queue)
}

// deadLetter moves a message to the dead-letter queue.
func (s *settler) deadLetter(c *claimed, r *pubsub.DeadLetterReason) {
	s.add(func(b *settleBatch) {
		b.dlSeq = append(b.dlSeq, c.seq)
		b.dlError = append(b.dlError, pgText(r.Error))
		b.dlHandler = append(b.dlHandler, pgText(r.Handler))
		b.dlService = append(b.dlService, pgText(r.Service))
	})
}

// take removes and returns the waiting settlements, or nil.
func (s *settler) take() *settleBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.len() == 0 {
		return nil
	}
	b := s.cur
	s.cur = settleBatch{}
	return &b
}

// takeForClaim is take for a fetcher about to claim: the settlements ride
// in the claim's transaction, saving a commit, when commits wait for the
// disk (sync_acks). Otherwise commits are cheap and the settle writer does
// them in parallel with the claims, on another connection. Nil while
// broken.
func (s *settler) takeForClaim() *settleBatch {
	if !s.d.cfg.syncAcks {
		return nil
	}
	s.mu.Lock()
	broken := s.broken
	s.mu.Unlock()
	if broken {
		return nil
	}
	return s.take()
}

// putBack returns a batch that could not be written.
func (s *settler) putBack(b *settleBatch, connectionTrouble bool) {
	s.mu.Lock()
	if s.cur.len() == 0 {
		s.since = time.Now()
	}
	b.merge(&s.cur)
	s.cur = *b
	if !connectionTrouble {
		s.broken = true
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// committed is called after b was written: consumers of messages that are
// back in their queue are woken, here and (through NOTIFY) elsewhere.
func (s *settler) committed(b *settleBatch) {
	if len(b.rqSeq) == 0 {
		return
	}
	now := time.Now()
	var ready []string
	for i, q := range b.rqQueue {
		if b.rqDelayMS[i] <= 0 {
			ready = append(ready, q)
		} else {
			s.d.sub.wakeAt(q, now.Add(time.Duration(b.rqDelayMS[i])*time.Millisecond))
		}
	}
	slices.Sort(ready)
	ready = slices.Compact(ready)
	for _, q := range ready {
		s.d.sub.wake(q)
	}
	s.d.notifier.after(ready)
}

// write writes b in one transaction.
func (s *settler) write(ctx context.Context, b *settleBatch) error {
	pb := &pgx.Batch{}
	pb.Queue("BEGIN")
	s.d.queueSettleCommitMode(pb)
	b.queue(pb, &s.d.q)
	pb.Queue("COMMIT")
	return s.d.pool.SendBatch(ctx, pb).Close()
}

// asyncCommit makes the transaction it runs in commit without waiting for
// its WAL to reach disk.
const asyncCommit = `SELECT set_config('synchronous_commit', 'off', true)`

// queueSettleCommitMode adds to a claim or settle transaction (after its
// BEGIN) what makes it commit asynchronously, unless sync_acks is set.
//
// Claims, acks, nacks and moves to the dead-letter queue change what
// happens to messages that are already durable. If the database crashes,
// the last moments of them can be lost, and the messages they were about
// are then delivered again: at least once, as always. Waiting for the disk
// on each of them would put a second flush in every message's path from
// publish to consumer, where the publish's own flush is the one that
// matters.
func (d *Driver) queueSettleCommitMode(pb *pgx.Batch) {
	if !d.cfg.syncAcks {
		pb.Queue(asyncCommit)
	}
}

// settleCommitStatements is how many statements queueSettleCommitMode
// adds.
func (d *Driver) settleCommitStatements() int {
	if d.cfg.syncAcks {
		return 0
	}
	return 1
}

// flush writes what is waiting. On failure the settlements are kept for
// the next try.
func (s *settler) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	b := s.take()
	if b == nil {
		return nil
	}
	if err := s.write(ctx, b); err != nil {
		s.putBack(b, isConnectionError(err))
		return err
	}
	s.mu.Lock()
	s.broken = false
	s.mu.Unlock()
	s.committed(b)
	return nil
}

// flushAll writes everything waiting, retrying until ctx ends.
func (s *settler) flushAll(ctx context.Context) error {
	for {
		err := s.flush(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return s.d.wrapErr("", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run writes settlements in the background until the backend closes.
func (s *settler) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := pubsub.Backoff{Initial: 50 * time.Millisecond}
	for {
		s.mu.Lock()
		n, since := s.cur.len(), s.since
		s.mu.Unlock()
		wait := time.Hour
		if n > 0 {
			wait = s.d.cfg.ackDelay - time.Since(since)
			if n >= s.d.cfg.batch || wait <= 0 {
				ctx, cancel := context.WithTimeout(s.d.workCtx, 30*time.Second)
				err := s.flush(ctx)
				cancel()
				if err == nil {
					backoff.Reset()
					continue
				}
				wait = backoff.Next()
				if s.d.ctx.Err() == nil {
					s.d.log.Warn("quantumflow: postgres: writing acks and nacks failed; retrying", "error", s.d.wrapErr("", err), "retry_in", wait)
				}
			}
		}
		timer.Reset(wait)
		select {
		case <-s.d.ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}
