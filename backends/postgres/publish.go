package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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

// flushers is how many publish transactions of one backend may be in
// flight at once. While they run, the next publishes gather for the next
// transaction (group commit).
const flushers = 4

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
			return fmt.Errorf("queue %s: message id %q: not valid UTF-8 text without NUL characters", r.queue, m.UUID)
		}
		md := "{}"
		if len(m.Metadata) > 0 {
			for k, v := range m.Metadata {
				if !validText(k) || !validText(v) {
					return fmt.Errorf("queue %s: message %s: metadata %q: not valid UTF-8 text without NUL characters", r.queue, m.UUID, k)
				}
			}
			b, err := json.Marshal(m.Metadata)
			if err != nil {
				return fmt.Errorf("queue %s: message %s: metadata: %w", r.queue, m.UUID, err)
			}
			md = string(b)
		}
		prio := int32(noPriority)
		p, ok, err := pubsub.PriorityOf(m)
		if err != nil {
			return fmt.Errorf("queue %s: %w", r.queue, err)
		}
		if ok {
			prio = int32(max(min(p, math.MaxInt32), noPriority+1))
		}
		payload := []byte(m.Payload)
		if payload == nil {
			payload = []byte{}
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
	r.ids = append(r.ids, o.ids...)
	r.payloads = append(r.payloads, o.payloads...)
	r.metadata = append(r.metadata, o.metadata...)
	r.priorities = append(r.priorities, o.priorities...)
}

// queue adds the insert of r to b.
func (r *rows) queueInsert(b *pgx.Batch, q *queries) {
	b.Queue(q.insert, r.queue, r.ids, r.payloads, r.metadata, r.priorities)
}

// publisher writes messages. Every Publish call waits for the commit of
// the transaction carrying its messages; concurrent calls share
// transactions.
type publisher struct {
	d    *Driver
	reqs chan *pubReq

	mu     sync.RWMutex // held for reading while sending on reqs
	closed bool
	wg     sync.WaitGroup
}

type pubReq struct {
	rows rows
	done chan error
}

func newPublisher(d *Driver) *publisher {
	p := &publisher{d: d, reqs: make(chan *pubReq, 1024)}
	for range flushers {
		p.wg.Add(1)
		go p.flusher()
	}
	return p
}

// Publish writes msgs to queue in one transaction, shared with concurrent
// publishes, and returns after it committed: a nil error means the
// messages are durable. Cancelling the first message's context stops the
// wait, not the write.
func (p *publisher) Publish(queue string, msgs ...*message.Message) error {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	req := &pubReq{rows: rows{queue: queue}, done: make(chan error, 1)}
	if err := req.rows.add(msgs); err != nil {
		return err
	}
	p.mu.RLock()
	if p.closed || p.d.closed.Load() {
		p.mu.RUnlock()
		return fmt.Errorf("publish to queue %s: %w", queue, pubsub.ErrClosed)
	}
	p.reqs <- req
	p.mu.RUnlock()
	select {
	case err := <-req.done:
		if err != nil {
			return fmt.Errorf("publish to %w", p.d.wrapErr(queue, err))
		}
		return nil
	case <-msgs[0].Context().Done():
		return fmt.Errorf("publish to queue %s: %w", queue, msgs[0].Context().Err())
	}
}

// Close stops publishing: publishes already accepted are written, later
// ones fail with ErrClosed. The backend's Close closes it too.
func (p *publisher) Close() error { return p.close() }

func (p *publisher) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.reqs)
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// flusher takes the next publish and every other one already waiting,
// and writes them in one transaction.
func (p *publisher) flusher() {
	defer p.wg.Done()
	for first := range p.reqs {
		batch := []*pubReq{first}
		n := first.rows.len()
	gather:
		for n < p.d.cfg.publishBatch {
			select {
			case r, ok := <-p.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
				n += r.rows.len()
			default:
				break gather
			}
		}
		// One statement per queue, in the order the publishes came.
		var groups []*rows
		for _, r := range batch {
			// Appending into the first request's arrays is safe: each
			// request's arrays are its own, and nobody reads them until
			// the write is over.
			if i := slices.IndexFunc(groups, func(g *rows) bool { return g.queue == r.rows.queue }); i >= 0 {
				groups[i].append(&r.rows)
			} else {
				groups = append(groups, &r.rows)
			}
		}
		err := p.write(groups)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// write inserts rows in one transaction with the wake-up notifications,
// retrying when the connection failed before anything was sent (a pooled
// connection broken by a server restart).
func (p *publisher) write(groups []*rows) error {
	d := p.d
	queues := make([]string, len(groups))
	for i, g := range groups {
		queues[i] = g.queue
	}
	var err error
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(d.workCtx, publishTimeout)
		unknown := d.unknownQueues(queues)
		notifyNow := d.notifier.before(queues)
		b := &pgx.Batch{}
		if len(unknown) > 0 {
			b.Queue(d.q.ensureQueues, unknown)
		}
		for _, g := range groups {
			g.queueInsert(b, &d.q)
		}
		if len(notifyNow) > 0 {
			b.Queue(d.q.notify, d.channel, notifyNow)
		}
		err = d.pool.SendBatch(ctx, b).Close()
		cancel()
		if err == nil {
			d.markKnown(unknown)
			d.notifier.after(without(queues, notifyNow))
			for _, q := range queues {
				d.sub.wake(q)
			}
			return nil
		}
		d.notifier.forget(notifyNow)
		if !pgconn.SafeToRetry(err) {
			return err
		}
		time.Sleep(time.Duration(try+1) * 50 * time.Millisecond)
	}
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
	if err := r.add(msgs); err != nil {
		return err
	}
	b := &pgx.Batch{}
	// ON CONFLICT DO NOTHING takes no lock on an existing queue row, so
	// this does not serialize the application's transactions.
	b.Queue(d.q.ensureQueues, []string{queue})
	r.queueInsert(b, &d.q)
	// NOTIFY inside the transaction is delivered at commit, and not at all
	// on rollback.
	b.Queue(d.q.notify, d.channel, []string{queue})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("publish to %w", d.wrapErr(queue, err))
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
