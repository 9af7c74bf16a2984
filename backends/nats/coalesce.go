package nats

import (
	"context"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
)

// Concurrent publishes of one message each to the same queue are merged,
// as a database merges concurrent commits: the publish that finds the
// queue idle sends its message at once (a lone publisher pays nothing for
// this), and those that arrive while it is in flight wait; when it has
// been answered, the first of them sends all of them as one fast batch
// and answers each, and so on. Many publishers of one message per call
// thus cost the server one answer per batch instead of one ack per
// message. Keyed and delayed messages are not merged: their publishes
// need each message's own ack (publish.go).

// singles merges the single-message publishes of one queue.
type singles struct {
	mu sync.Mutex
	// busy: a publish of this queue's singles is in flight, or about to
	// be (a waiting publish has been made its leader).
	busy bool
	// waiting are the publishes waiting for the next group, in the order
	// they came.
	waiting []*single
}

// single is one waiting publish.
type single struct {
	ctx context.Context
	msg *nats.Msg
	// wake is signalled (signal) when the publish is done or has been
	// made the leader of the next group.
	wake chan struct{}
	// Set under singles.mu. gone: the publish has returned without an
	// answer (its context ended), so it must not be made a leader.
	lead, done, gone bool
	err              error
}

// publishSingle publishes m, one message to q, merged with concurrent
// single publishes to q.
func (d *driver) publishSingle(ctx context.Context, q *queueEntry, m *nats.Msg, noStream func(context.Context)) error {
	c := &q.singles
	s := &single{ctx: ctx, msg: m, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.waiting = append(c.waiting, s)
	if !c.busy {
		c.busy, s.lead = true, true
	}
	lead := s.lead
	c.mu.Unlock()
	for !lead {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return c.quit(s)
		}
		c.mu.Lock()
		done, err := s.done, s.err
		lead = s.lead
		c.mu.Unlock()
		if done {
			return err
		}
	}
	if ctx.Err() != nil {
		return c.quit(s)
	}
	return d.publishGroup(q, s, noStream)
}

// publishGroup publishes the waiting messages, the leader's first, with
// the leader's context, answers each of their publishes and makes the
// next waiting publish the leader of the group after.
func (d *driver) publishGroup(q *queueEntry, leader *single, noStream func(context.Context)) error {
	c := &q.singles
	c.mu.Lock()
	group := c.waiting
	c.waiting = nil
	c.mu.Unlock()
	msgs := make([]*nats.Msg, 0, len(group))
	live := group[:0]
	for _, s := range group {
		if err := s.ctx.Err(); err != nil {
			c.finish(s, err) // ended while it waited: not sent
			continue
		}
		msgs = append(msgs, s.msg)
		live = append(live, s)
	}
	var err error
	if len(msgs) > 0 {
		err = d.publishAll(leader.ctx, msgs, &q.batched, noStream, nil)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && leader.ctx.Err() != nil {
		// The leader's context ended the publish, not a failure: the
		// others wait for the next group. Some of their messages may be
		// stored; sending them again stores nothing twice (Nats-Msg-Id).
		again := slices.DeleteFunc(live, func(s *single) bool { return s == leader || s.gone })
		c.waiting = append(again, c.waiting...)
		live = []*single{leader}
	}
	for _, s := range live {
		s.done, s.err = true, err
		signal(s.wake)
	}
	c.handOff()
	return err
}

// quit ends the wait of s, whose context ended: taken out of the waiting
// publishes (its message is not sent), or, when it was made the leader,
// handing that on. A publish already in a group being sent goes on; only
// the wait ends.
func (c *singles) quit(s *single) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.done {
		return s.err
	}
	if i := slices.Index(c.waiting, s); i >= 0 {
		c.waiting = slices.Delete(c.waiting, i, i+1)
	}
	if s.lead {
		c.handOff()
	}
	s.gone = true
	return s.ctx.Err()
}

// handOff makes the first waiting publish the leader of the next group,
// or marks the queue idle. c.mu is held.
func (c *singles) handOff() {
	if len(c.waiting) == 0 {
		c.busy = false
		return
	}
	next := c.waiting[0]
	next.lead = true
	signal(next.wake)
}

// finish answers s, which was not sent. c.mu is not held.
func (c *singles) finish(s *single, err error) {
	c.mu.Lock()
	s.done, s.err = true, err
	c.mu.Unlock()
	signal(s.wake)
}

// signal wakes the publish waiting on wake (a channel with room for one
// signal). A signal already pending is enough: the woken publish reads
// its state under singles.mu.
func signal(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
