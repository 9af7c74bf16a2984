package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// notifier decides when publishes notify consumers. NOTIFY takes a global
// lock at commit, so under heavy write load one backend notifies a queue
// at most once per debounce interval inside its transactions: the first
// publish of an interval notifies, the others of the interval do not. The
// messages those committed are found by the consumers the next notifying
// transaction wakes or, when publishing stops, by one trailing
// notification of its own two intervals after the last, so no message
// waits for a poll. The trailing NOTIFY waits two intervals, not one, so
// that a publisher that goes on notifies in its next transaction instead:
// a trailing NOTIFY is a transaction of its own, with a commit to wait for,
// and sent every interval while a lone publisher went on, they cost it a
// quarter of its rate (bench/, issue 16). NOTIFY once per interval still
// costs a lone publisher 10-20 µs a publish of its 250, against none.
type notifier struct {
	d *Driver

	mu       sync.Mutex
	last     map[string]time.Time // last notification per queue
	trailing map[string]bool      // queues owed a notification
	kick     chan struct{}
	started  bool
}

// trailingAfter is how many debounce intervals after a queue's last
// notification its trailing one is sent.
const trailingAfter = 2

func newNotifier(d *Driver) *notifier {
	return &notifier{d: d, last: map[string]time.Time{}, trailing: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// before returns the queues a transaction about to commit should notify,
// and counts them as notified now.
func (n *notifier) before(queues []string) []string {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, q := range queues {
		if now.Sub(n.last[q]) >= n.d.cfg.notifyDebounce {
			n.last[q] = now
			out = append(out, q)
			// The messages of the transactions that skipped are
			// committed: the consumers this wakes find them too.
			delete(n.trailing, q)
		}
	}
	return out
}

// forget undoes before for a transaction that failed. The queues are
// owed a notification again: before took the trailing one of the
// transactions that skipped theirs.
func (n *notifier) forget(queues []string) {
	n.mu.Lock()
	for _, q := range queues {
		delete(n.last, q)
	}
	n.mu.Unlock()
	n.after(queues)
}

// after schedules a notification of queues whose new messages committed
// without one.
func (n *notifier) after(queues []string) {
	if len(queues) == 0 {
		return
	}
	n.mu.Lock()
	// run waits for the queues already owed one: only a new one can be
	// due before it wakes. Waking it for every publish cost a lone
	// publisher a tenth of its CPU.
	kick := false
	for _, q := range queues {
		if !n.trailing[q] {
			n.trailing[q] = true
			kick = true
		}
	}
	if !n.started {
		n.started = true
		n.d.goBackground(n.run)
	}
	n.mu.Unlock()
	if kick {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
}

// run sends the trailing notifications when they are due.
func (n *notifier) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		var due []string
		var next time.Time
		for q := range n.trailing {
			at := n.last[q].Add(trailingAfter * n.d.cfg.notifyDebounce)
			if !at.After(now) {
				due = append(due, q)
				delete(n.trailing, q)
				n.last[q] = now
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		n.mu.Unlock()
		if len(due) > 0 {
			ctx, cancel := context.WithTimeout(n.d.ctx, 10*time.Second)
			if _, err := n.d.pool.Exec(ctx, n.d.q.notify, n.d.channel, due); err != nil && n.d.ctx.Err() == nil {
				// Consumers elsewhere find the messages by polling.
				n.d.log.Debug("quantumflow: postgres: notify failed", "queues", due, "error", err)
			}
			cancel()
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-n.d.ctx.Done():
			return
		case <-n.kick:
		case <-timer.C:
		}
	}
}

// listen keeps a connection LISTENing on the schema's channel and wakes
// the queue named by each notification. After a (re)connect it wakes every
// queue: notifications sent while it was away are lost.
func (d *Driver) listen() {
	var backoff pubsub.Backoff
	for d.ctx.Err() == nil {
		connected, err := d.listenOnce()
		if d.ctx.Err() != nil {
			return
		}
		if connected {
			backoff.Reset()
		}
		wait := backoff.Next()
		d.log.Warn("quantumflow: postgres: LISTEN connection lost; consumers poll until it is back",
			"error", pubsub.RedactError(err, d.secret), "retry_in", wait)
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (d *Driver) listenOnce() (connected bool, err error) {
	ctx := d.ctx
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, d.pool.Config().ConnConfig.Copy())
	cancel()
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return false, err
	}
	d.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		d.wake(n.Payload)
	}
}
