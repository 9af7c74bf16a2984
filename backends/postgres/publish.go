package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Group commit: publishes that come while a publish transaction is on
// its way gather for the next one, which also waits a moment for those
// the last one released (gatherWait). A second transaction (up to
// maxPublishTx) starts beside the one in flight only for a group of at
// least groupRows messages: small publishes wait for the commit in flight
// and share the next, large ones gain from writing in parallel. 64
// concurrent single-message publishers committed 45-52k msg/s with 8
// transactions in flight and 62k with 4, 72-78k with 1 (bench/); 4
// publishers of 100 messages per call went best with 2-4.
const (
	maxPublishTx = 4
	groupRows    = 100
)

// publishTimeout bounds one publish transaction, so that a database that
// stopped answering fails publishes instead of hanging them.
const publishTimeout = 30 * time.Second

// rows are one queue's messages encoded as the insert statement's
// arrays.
type rows struct {
	queue      string
	ids        []string
	payloads   [][]byte
	metadata   []string
	priorities []int32 // noPriority: the queue's
	// availableAt is when each message becomes deliverable (the zero
	// time: at once); nil while no message of the rows is delayed.
	availableAt []time.Time
	// keys are the messages' dedup keys ("" for none), nil while none has
	// one: only then do the rows go through the dedup insert.
	keys []string
	// dups are, after a write, the duplicates, which were not stored:
	// their positions in the arrays and the ids stored for their keys.
	dups []dup
}

// dup is a message not stored because its dedup key was claimed: its
// position in rows and the id of the message that claimed the key.
type dup struct {
	i  int
	id string
}

// noPriority marks a message without a priority of its own in the insert's
// priority array (an array of plain integers encodes faster than one with
// NULLs).
const noPriority = math.MinInt32

func (r *rows) len() int { return len(r.ids) }

func (r *rows) add(msgs []*message.Message) error {
	for _, m := range msgs {
		// Checked here, per Publish: a value the server rejects would fail
		// every publish sharing its transaction.
		if !validText(m.UUID) {
			return fmt.Errorf("%w: message id %q: not valid UTF-8 text without NUL characters", pubsub.ErrInvalidArgument, m.UUID)
		}
		md := "{}"
		if len(m.Metadata) > 0 {
			for k, v := range m.Metadata {
				if !validText(k) || !validText(v) {
					return fmt.Errorf("%w: message %s: metadata %q: not valid UTF-8 text without NUL characters", pubsub.ErrInvalidArgument, m.UUID, k)
				}
			}
			b, err := json.Marshal(m.Metadata)
			if err != nil {
				return fmt.Errorf("%w: message %s: metadata: %w", pubsub.ErrInvalidArgument, m.UUID, err)
			}
			md = string(b)
		}
		prio := int32(noPriority)
		p, ok, err := pubsub.PriorityOf(m)
		if err != nil {
			return fmt.Errorf("%w: %w", pubsub.ErrInvalidArgument, err)
		}
		if ok {
			prio = int32(max(min(p, math.MaxInt32), noPriority+1))
		}
		payload := []byte(m.Payload)
		if payload == nil {
			payload = []byte{}
		}
		at, delayed, err := pubsub.DeliverAtOf(m)
		if err != nil {
			return fmt.Errorf("%w: %w", pubsub.ErrInvalidArgument, err)
		}
		if delayed && r.availableAt == nil {
			r.availableAt = make([]time.Time, len(r.ids), cap(r.ids))
		}
		if r.availableAt != nil {
			r.availableAt = append(r.availableAt, at)
		}
		if key := m.Metadata[pubsub.MetadataDedupKey]; key != "" || r.keys != nil {
			if r.keys == nil {
				r.keys = make([]string, len(r.ids), len(r.ids)+1)
			}
			r.keys = append(r.keys, key)
		}
		r.ids = append(r.ids, m.UUID)
		r.payloads = append(r.payloads, payload)
		r.metadata = append(r.metadata, md)
		r.priorities = append(r.priorities, prio)
	}
	return nil
}

// validText reports whether PostgreSQL can store s as text (and jsonb).
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func (r *rows) append(o *rows) {
	if r.availableAt != nil || o.availableAt != nil {
		if r.availableAt == nil {
			r.availableAt = make([]time.Time, len(r.ids))
		}
		if o.availableAt == nil {
			r.availableAt = append(r.availableAt, make([]time.Time, len(o.ids))...)
		} else {
			r.availableAt = append(r.availableAt, o.availableAt...)
		}
	}
	if r.keys != nil || o.keys != nil {
		r.keys = append(r.keys, make([]string, len(r.ids)-len(r.keys))...)
		r.keys = append(r.keys, o.keys...)
		r.keys = append(r.keys, make([]string, len(o.ids)-len(o.keys))...)
	}
	r.ids = append(r.ids, o.ids...)
	r.payloads = append(r.payloads, o.payloads...)
	r.metadata = append(r.metadata, o.metadata...)
	r.priorities = append(r.priorities, o.priorities...)
}

// queueInsert adds the insert of r to b: the plain insert, or when a
// message has a dedup key the dedup insert, whose result fills r.dups.
func (r *rows) queueInsert(b *pgx.Batch, q *queries) {
	if r.keys == nil {
		if r.availableAt != nil {
			b.Queue(q.insertAt, r.queue, r.ids, r.payloads, r.metadata, r.priorities, r.availableAt)
			return
		}
		if r.len() == 1 {
			b.Queue(q.insertOne, r.queue, r.ids[0], r.payloads[0], r.metadata[0], r.priorities[0])
			return
		}
		b.Queue(q.insert, r.queue, r.ids, r.payloads, r.metadata, r.priorities)
		return
	}
	at := r.availableAt
	if at == nil {
		at = make([]time.Time, len(r.ids))
	}
	r.dups = r.dups[:0]
	b.Queue(q.insertDedup, r.queue, r.ids, r.payloads, r.metadata, r.priorities, r.keys,
		pubsub.DefaultDedupWindow.Milliseconds(), newOwner(), at).Query(func(rs pgx.Rows) error {
		var ord int64
		var id string
		_, err := pgx.ForEachRow(rs, []any{&ord, &id}, func() error {
			r.dups = append(r.dups, dup{i: int(ord) - 1, id: id})
			return nil
		})
		return err
	})
}

// newOwner returns a token naming one dedup insert statement.
func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setFirstIDs sets the UUID of each message of msgs that was a duplicate
// to the id stored for its key.
func setFirstIDs(msgs []*message.Message, dups []dup) {
	for _, d := range dups {
		msgs[d.i].UUID = d.id
	}
}

// dispatcher writes published messages. Every SendBatch waits for the
// commit of the transaction carrying its messages; concurrent calls share
// transactions. There is no dispatching goroutine: the publish that finds
// nothing in flight or waiting writes its transaction itself (it leads),
// and the publishes that gathered meanwhile go on in a goroutine of their
// own, which goes on with those that gather while it writes. So a lone
// publisher writes as a plain pgx call does, with no hand-over to another
// goroutine and back: the hand-over (a new goroutine growing its stack for
// pgx, a thread woken for the reply) took 60 of the 150 µs of CPU a
// publish cost (issue 16).
type dispatcher struct {
	d *Driver

	mu          sync.Mutex
	pending     []*pubReq // waiting for a transaction, in the order they came
	pendingRows int
	inFlight    int // transactions being written
	closed      bool
	drained     chan struct{} // closed once closed and nothing is in flight
}

type pubReq struct {
	ctx  context.Context // a request whose ctx ends before its transaction starts is dropped
	rows rows
	done chan error
	// group, off and n place the request's messages in the rows written
	// (a request heading its group lends its rows to the others), and
	// dups are those of them that were duplicates.
	group *rows
	off   int
	n     int
	dups  []dup
}

func newDispatcher(d *Driver) *dispatcher {
	return &dispatcher{d: d, drained: make(chan struct{})}
}

// SendBatch writes msgs to queue in one transaction, shared with
// concurrent publishes, and returns after it committed: a nil error means
// the messages are durable. When ctx ends before the transaction carrying
// them starts, nothing is written. Later, a transaction shared with other
// publishes goes on and only the wait ends, with ctx's error; one the
// publish writes itself (it leads) is interrupted, and its outcome is
// returned.
func (d *Driver) SendBatch(ctx context.Context, queue string, msgs []*message.Message) error {
	req := &pubReq{ctx: ctx, rows: rows{queue: queue}, done: make(chan error, 1), n: len(msgs)}
	if err := req.rows.add(msgs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Before the request is handed over: from then on a transaction may
	// append other publishes to its rows.
	if req.rows.keys != nil {
		d.startDedupExpiry()
	}
	lead, err := d.pub.submit(req)
	if err != nil {
		return err
	}
	if lead {
		// Written by now: its outcome is known, whatever ctx did.
		d.pub.lead(ctx, req)
		err = <-req.done
	} else {
		select {
		case err = <-req.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err == nil {
		setFirstIDs(msgs, req.dups)
	}
	return d.wrapErr(err)
}

// submit queues a publish for the next transaction, starting it when none
// is in flight. It reports whether the publish leads instead: with nothing
// in flight or waiting, its caller writes it with lead.
func (p *dispatcher) submit(req *pubReq) (lead bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, pubsub.ErrClosed
	}
	if p.inFlight == 0 && len(p.pending) == 0 {
		p.inFlight++
		return true, nil
	}
	p.pending = append(p.pending, req)
	p.pendingRows += req.rows.len()
	p.startLocked()
	return false, nil
}

// lead writes a leading publish's transaction in its caller's goroutine,
// under the caller's context (ended, it interrupts the write, whose
// messages may or may not be stored then) as well as the backend's, and
// starts a transaction for the publishes that gathered meanwhile.
func (p *dispatcher) lead(ctx context.Context, req *pubReq) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.d.workCtx, cancel)
	p.flush(ctx, []*pubReq{req})
	stop()
	cancel()
	p.mu.Lock()
	p.inFlight--
	p.endLocked()
	p.mu.Unlock()
}

// startLocked starts transactions for the pending publishes: one whenever
// none is in flight, and more beside it for groups of groupRows messages
// or more. Each carries up to publishBatch messages, in the order the
// publishes came. p.mu is held.
func (p *dispatcher) startLocked() {
	for p.startable() {
		go p.run(p.takeLocked())
	}
}

func (p *dispatcher) startable() bool {
	return len(p.pending) > 0 && p.inFlight < maxPublishTx && (p.inFlight == 0 || p.pendingRows >= groupRows)
}

func (p *dispatcher) takeLocked() []*pubReq {
	var batch []*pubReq
	batch, p.pending, p.pendingRows = takeGroup(p.pending, p.pendingRows, p.d.cfg.publishBatch)
	p.inFlight++
	return batch
}

// run writes batch, then the next group while one is due, in one
// goroutine.
func (p *dispatcher) run(batch []*pubReq) {
	for batch != nil {
		p.flush(p.d.workCtx, batch)
		p.gather(len(batch))
		p.mu.Lock()
		p.inFlight--
		batch = nil
		if p.startable() {
			batch = p.takeLocked()
		}
		p.endLocked()
		p.mu.Unlock()
	}
}

// gatherWait bounds how long the transaction that follows another waits
// for the publishes that one released. Without it, publishers that publish
// again at once miss the next transaction by microseconds, and concurrent
// publishers split into two groups that take turns (8 publishers: 4
// messages a transaction). PostgreSQL's commit_delay does the same for
// its WAL flushes.
const gatherWait = 100 * time.Microsecond

// gather waits, yielding the processor, until the publishes released by a
// transaction came back (as many are pending as before, plus those), or
// gatherWait passed. It does not wait for a lone publish: that one leads
// its own transaction when it comes back.
func (p *dispatcher) gather(released int) {
	p.mu.Lock()
	want := len(p.pending) + released
	p.mu.Unlock()
	if want < 2 {
		return
	}
	deadline := time.Now().Add(gatherWait)
	for time.Now().Before(deadline) {
		runtime.Gosched()
		p.mu.Lock()
		n := len(p.pending)
		p.mu.Unlock()
		if n >= want {
			return
		}
	}
}

// endLocked follows the end of a transaction: it starts those due for the
// pending publishes, and tells close when the last one is over. p.mu is
// held.
func (p *dispatcher) endLocked() {
	p.startLocked()
	if p.closed && p.inFlight == 0 {
		close(p.drained)
	}
}

// close stops publishing: publishes already accepted are written, later
// ones fail with ErrClosed.
func (p *dispatcher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.drained
		return
	}
	p.closed = true
	// Pending publishes imply a transaction in flight, which writes them
	// before it ends.
	if p.inFlight == 0 {
		close(p.drained)
	}
	p.mu.Unlock()
	<-p.drained
}

// takeGroup splits the publishes of the next transaction off pending: the
// first one, and those after it while they fit in limit messages.
func takeGroup(pending []*pubReq, pendingRows, limit int) (group, rest []*pubReq, restRows int) {
	n, i := pending[0].rows.len(), 1
	for ; i < len(pending) && n+pending[i].rows.len() <= limit; i++ {
		n += pending[i].rows.len()
	}
	return pending[:i:i], pending[i:], pendingRows - n
}

// flush writes a group of publishes in one transaction under ctx, one
// statement per queue, and tells each publish how it went.
func (p *dispatcher) flush(ctx context.Context, batch []*pubReq) {
	var groups []*rows
	write := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // ended while it waited: not written
			continue
		}
		write = append(write, r)
		// Appending into the first request's arrays is safe: each
		// request's arrays are its own, and nobody reads them until the
		// write is over.
		if i := slices.IndexFunc(groups, func(g *rows) bool { return g.queue == r.rows.queue }); i >= 0 {
			r.group, r.off = groups[i], groups[i].len()
			groups[i].append(&r.rows)
		} else {
			r.group, r.off = &r.rows, 0
			groups = append(groups, &r.rows)
		}
	}
	if len(write) == 0 {
		return
	}
	err := p.write(ctx, groups)
	if err == nil {
		for _, r := range write {
			r.dups = r.group.dupsIn(r.off, r.n)
		}
	}
	for _, r := range write {
		r.done <- err
	}
}

// dupsIn returns the duplicates among the n messages from off of r,
// numbered from off.
func (r *rows) dupsIn(off, n int) []dup {
	var out []dup
	for _, d := range r.dups {
		if d.i >= off && d.i < off+n {
			out = append(out, dup{i: d.i - off, id: d.id})
		}
	}
	return out
}

// write inserts rows in one transaction with the wake-up notifications,
// retrying when the connection failed before anything was sent (a pooled
// connection broken by a server restart).
func (p *dispatcher) write(ctx context.Context, groups []*rows) error {
	d := p.d
	queues := make([]string, len(groups))
	for i, g := range groups {
		queues[i] = g.queue
	}
	var err error
	backoff := pubsub.Backoff{Initial: 50 * time.Millisecond}
	for try := 0; try < 3; try++ {
		tctx, cancel := context.WithTimeout(ctx, publishTimeout)
		unknown := d.unknownQueues(queues)
		notifyNow := d.notifier.before(queues)
		err = d.writeOnce(tctx, groups, unknown, notifyNow)
		cancel()
		if err == nil {
			d.markKnown(unknown)
			d.notifier.after(without(queues, notifyNow))
			for _, q := range queues {
				d.wake(q)
			}
			return nil
		}
		d.notifier.forget(notifyNow)
		if !pgconn.SafeToRetry(err) || backoff.Wait(ctx) != nil {
			return err
		}
	}
	return err
}

// writeOnce sends the statements of one publish transaction: in one
// round trip (an implicit transaction) unless some rows go in with COPY.
func (d *Driver) writeOnce(ctx context.Context, groups []*rows, unknown, notifyNow []string) error {
	b := &pgx.Batch{}
	if len(unknown) > 0 {
		b.Queue(d.q.ensureQueues, ensureArgs(unknown)...)
	}
	var copies []*copyRows
	for _, g := range groups {
		if !g.copyable() {
			g.queueInsert(b, &d.q)
			continue
		}
		c := &copyRows{rows: g}
		copies = append(copies, c)
		b.Queue(d.q.queuePriority, g.queue).QueryRow(func(row pgx.Row) error { return row.Scan(&c.priority) })
	}
	// NOTIFY is sent at commit: its place among the statements does not
	// matter.
	if len(notifyNow) > 0 {
		b.Queue(d.q.notify, d.channel, notifyNow)
	}
	if len(copies) == 0 {
		if q := b.QueuedQueries; len(q) == 1 && q[0].Fn == nil {
			_, err := d.pool.Exec(ctx, q[0].SQL, q[0].Arguments...)
			return err
		}
		return d.pool.SendBatch(ctx, b).Close()
	}
	if len(copies) == 1 && b.Len() == 1 {
		return d.copyAlone(ctx, b, copies[0])
	}
	return d.copyTx(ctx, b, copies)
}

// copyAlone copies one group, whose only other statement is the read of
// its queue's priority, with no transaction around the two: COPY is a
// transaction of its own, which saves copyTx's BEGIN and its COMMIT's
// round trip (4 publishers of 100 4 KiB messages per call: 0.94x raw
// COPY against 0.92x, eight alternating pairs). A priority changed
// between the read and the copy applies as if the publish had come a
// moment earlier, which a publish concurrent with the change may.
func (d *Driver) copyAlone(ctx context.Context, b *pgx.Batch, c *copyRows) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return d.copyIn(ctx, conn.Conn(), []*copyRows{c})
}

// copyTx sends b and then copies in one transaction, and commits; on
// error it rolls back. COPY is a statement of its own: the transaction's
// BEGIN goes in b's round trip, one fewer than pgx.BeginFunc.
func (d *Driver) copyTx(ctx context.Context, b *pgx.Batch, copies []*copyRows) error {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	b.QueuedQueries = slices.Insert(b.QueuedQueries, 0, &pgx.QueuedQuery{SQL: "BEGIN"})
	err = c.SendBatch(ctx, b).Close()
	if err == nil {
		err = d.copyIn(ctx, c.Conn(), copies)
	}
	if err == nil {
		_, err = c.Exec(ctx, "COMMIT")
		return err
	}
	// As pgx.BeginFunc does; when that fails too, the pool closes the
	// connection on release (it is not idle).
	_, _ = c.Exec(ctx, "ROLLBACK")
	return err
}

// without returns the elements of a not in b.
func without(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// PublishTx publishes msgs to queue inside the caller's transaction: they
// become visible, and consumers are woken, if and only if tx commits. Use
// it to publish together with the business data a message is about. The
// transaction must be on the backend's database; tables are found in the
// backend's schema.
func (d *Driver) PublishTx(ctx context.Context, tx pgx.Tx, queue string, msgs ...*message.Message) error {
	if err := d.checkOpen(); err != nil {
		return fmt.Errorf("publish to queue %s: %w", queue, err)
	}
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	r := rows{queue: queue}
	for _, m := range msgs {
		if err := pubsub.ValidateMessage(m, d.cfg.maxPayload); err != nil {
			return fmt.Errorf("publish to queue %s: %w", queue, err)
		}
	}
	if err := r.add(msgs); err != nil {
		return fmt.Errorf("publish to queue %s: %w", queue, err)
	}
	b := &pgx.Batch{}
	// ON CONFLICT DO NOTHING takes no lock on an existing queue row, so
	// this does not serialize the application's transactions.
	b.Queue(d.q.ensureQueues, ensureArgs([]string{queue})...)
	r.queueInsert(b, &d.q)
	// NOTIFY inside the transaction is delivered at commit, and not at all
	// on rollback.
	b.Queue(d.q.notify, d.channel, []string{queue})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("publish to queue %s: %w", queue, d.wrapErr(err))
	}
	if r.keys != nil {
		d.startDedupExpiry()
		setFirstIDs(msgs, r.dups)
	}
	return nil
}

// PublishTx publishes msgs to queue inside tx, on a backend opened with a
// postgres:// URL. It fails with pubsub.ErrUnsupported on other backends.
func PublishTx(ctx context.Context, b *pubsub.Backend, tx pgx.Tx, queue string, msgs ...*message.Message) error {
	d, ok := b.Driver().(*Driver)
	if !ok {
		return fmt.Errorf("publish to queue %s in a transaction: %w: %s is not PostgreSQL", queue, pubsub.ErrUnsupported, b.Scheme())
	}
	return d.PublishTx(ctx, tx, queue, msgs...)
}

// TxPublisher returns a Watermill publisher that publishes inside tx, for
// code written against message.Publisher. Its Close does nothing; the
// transaction's owner commits or rolls back.
func (d *Driver) TxPublisher(ctx context.Context, tx pgx.Tx) message.Publisher {
	return &txPublisher{d: d, ctx: ctx, tx: tx}
}

type txPublisher struct {
	d   *Driver
	ctx context.Context
	tx  pgx.Tx
}

func (p *txPublisher) Publish(queue string, msgs ...*message.Message) error {
	return p.d.PublishTx(p.ctx, p.tx, queue, msgs...)
}

func (p *txPublisher) Close() error { return nil }
