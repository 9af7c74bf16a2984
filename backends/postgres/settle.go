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
// requeues (retries, interrupted deliveries, give-backs) and moves to the
// dead-letter queue.
type settleBatch struct {
	acks        []int64
	requeues    []requeue
	deadLetters []deadLetter
}

// requeue puts a message back in its queue, visible after delayMS.
// counted (0 or 1) is added to its retry_count; failed records a failure
// (first/last failure times, err as last error).
type requeue struct {
	seq     int64
	owner   string
	delayMS int64
	counted int32
	err     *string
	failed  bool
	queue   string // not written: who to wake afterwards
}

type deadLetter struct {
	seq                   int64
	err, handler, service string
}

func (b *settleBatch) len() int { return len(b.acks) + len(b.requeues) + len(b.deadLetters) }

func (b *settleBatch) merge(o *settleBatch) {
	b.acks = append(b.acks, o.acks...)
	b.requeues = append(b.requeues, o.requeues...)
	b.deadLetters = append(b.deadLetters, o.deadLetters...)
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

// queue adds the batch's statements to pb and returns how many it added.
// Rows go in seq order, so that concurrent transactions lock shared rows
// in the same order and cannot deadlock.
func (b *settleBatch) queue(pb *pgx.Batch, q *queries) int {
	n := 0
	if len(b.deadLetters) > 0 {
		slices.SortFunc(b.deadLetters, func(x, y deadLetter) int { return cmp.Compare(x.seq, y.seq) })
		seqs, errs, handlers, services := make([]int64, 0, len(b.deadLetters)), make([]string, 0, len(b.deadLetters)),
			make([]string, 0, len(b.deadLetters)), make([]string, 0, len(b.deadLetters))
		for _, dl := range b.deadLetters {
			seqs, errs = append(seqs, dl.seq), append(errs, dl.err)
			handlers, services = append(handlers, dl.handler), append(services, dl.service)
		}
		pb.Queue(q.deadLetter, seqs, errs, handlers, services)
		n++
	}
	if len(b.requeues) > 0 {
		slices.SortFunc(b.requeues, func(x, y requeue) int { return cmp.Compare(x.seq, y.seq) })
		k := len(b.requeues)
		seqs, owners, delays := make([]int64, 0, k), make([]string, 0, k), make([]int64, 0, k)
		counted, errs, failed := make([]int32, 0, k), make([]*string, 0, k), make([]bool, 0, k)
		for _, r := range b.requeues {
			seqs, owners, delays = append(seqs, r.seq), append(owners, r.owner), append(delays, r.delayMS)
			counted, errs, failed = append(counted, r.counted), append(errs, r.err), append(failed, r.failed)
		}
		pb.Queue(q.requeue, seqs, owners, delays, counted, errs, failed)
		n++
	}
	if len(b.acks) > 0 {
		slices.Sort(b.acks)
		pb.Queue(q.ack, b.acks)
		n++
	}
	return n
}

// settler collects settlements and writes them in batches: when ackDelay
// has passed since the oldest one, when a batch is full, piggybacked on
// the next claim of the queue (with sync_acks), or on demand (Stats,
// Close). Writing late is safe: until then the messages stay leased to this backend, and every
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

// Settle hands settlements to the settle writer, which writes them
// within ack_delay (see settler). A settlement of a lost message does
// nothing.
func (d *Driver) Settle(_ context.Context, queue string, ss []pubsub.Settlement) error {
	d.settler.add(func(b *settleBatch) {
		for _, s := range ss {
			if s.Msg.Lost() {
				continue
			}
			l := s.Msg.AckID.(*lease)
			l.settled.Store(true)
			switch s.Action {
			case pubsub.SettleAck:
				b.acks = append(b.acks, l.seq)
			case pubsub.SettleRetry:
				b.addRequeue(queue, l, s.Delay, true, true, s.Error)
			case pubsub.SettleDeadLetter:
				b.addDeadLetter(l, s)
			case pubsub.SettleInterrupted:
				b.addRequeue(queue, l, 0, true, false, "")
			case pubsub.SettleDefer:
				b.addRequeue(queue, l, s.Delay, false, false, "")
			}
		}
	})
	return nil
}

// GiveBack returns messages to their queue now, in one transaction with
// their delivery undone, so that the next claim finds them again in
// order. If the database cannot be reached the settle writer keeps
// trying.
func (d *Driver) GiveBack(ctx context.Context, queue string, ms []*pubsub.Received) error {
	b := &settleBatch{}
	for _, m := range ms {
		if !m.Lost() {
			l := m.AckID.(*lease)
			l.settled.Store(true)
			b.addRequeue(queue, l, 0, false, false, "")
		}
	}
	if b.len() == 0 {
		return nil
	}
	if err := d.settler.write(ctx, b); err != nil {
		d.settler.retryLater(b, isConnectionError(err))
		return nil
	}
	d.settler.committed(b)
	return nil
}

// addRequeue puts a message back in its queue, visible after delay.
// counted says whether this delivery counts as an attempt (it does for
// every message that reached a consumer); failed records a failure
// (first/last failure times, errText as last error).
func (b *settleBatch) addRequeue(queue string, l *lease, delay time.Duration, counted bool, failed bool, errText string) {
	r := requeue{seq: l.seq, owner: l.owner, delayMS: delay.Milliseconds(), failed: failed, queue: queue}
	if errText != "" {
		errText = pgText(errText)
		r.err = &errText
	}
	if counted {
		r.counted = 1
	}
	b.requeues = append(b.requeues, r)
}

// addDeadLetter moves a message to the dead-letter queue.
func (b *settleBatch) addDeadLetter(l *lease, s pubsub.Settlement) {
	r := pubsub.DeadLetterReason{Error: s.Error}
	if s.DeadLetter != nil {
		r = *s.DeadLetter
		r.Error = cmp.Or(r.Error, s.Error)
	}
	b.deadLetters = append(b.deadLetters, deadLetter{seq: l.seq, err: pgText(r.Error), handler: pgText(r.Handler), service: pgText(r.Service)})
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

// takeForClaim is take for a claim about to start: the settlements ride
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

// retryLater takes back a batch that could not be written, for the next
// write.
func (s *settler) retryLater(b *settleBatch, connectionTrouble bool) {
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
	if len(b.requeues) == 0 {
		return
	}
	now := time.Now()
	var ready []string
	for _, r := range b.requeues {
		if r.delayMS <= 0 {
			ready = append(ready, r.queue)
		} else {
			s.d.wakeAt(r.queue, now.Add(time.Duration(r.delayMS)*time.Millisecond))
		}
	}
	slices.Sort(ready)
	ready = slices.Compact(ready)
	for _, q := range ready {
		s.d.returned(q)
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
		s.retryLater(b, isConnectionError(err))
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
			return s.d.wrapErr(err)
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
					s.d.log.Warn("quantumflow: postgres: writing acks and nacks failed; retrying", "error", s.d.wrapErr(err), "retry_in", wait)
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
