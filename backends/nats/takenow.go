package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// takeNow pulls up to max messages that q holds ready now, with one
// no-wait pull request: the server sends what it has and ends the request
// with a status (404 once it has no more, 408 at once when other requests
// already wait for what it has), or with the last message of the batch.
//
// It is nats.go's FetchNoWait without its client-side deadline. nats.go
// gives up on a fetch after one second without a reply and unsubscribes;
// what the server sends after that is lost until ack_wait, its delivery
// counted as an attempt, and a message given back is overtaken by the
// next (OrderThroughGiveBacks failed so on fresh clones: with the machine
// loaded, no-wait fetches took up to a second and timed out). Here the
// server's answer ends the request or, failing that, takeNowWait: the
// server holds a no-wait request while it has messages it may not
// deliver yet (max_ack_pending reached), and a request is gone with no
// answer when the connection was re-established or the consumer's leader
// died. Then the request is abandoned (see abandon).
//
// It takes no context: the engine's cancellations (to give back, for an
// admin read, to stop) wait for it. Abandoning a request the server is
// answering can lose a message: the server picks a message for the
// request, then sends it, and an unsubscription in between drops it
// (StatsAndPending failed once so: a message in flight until ack_wait).
// A no-wait request ends in milliseconds, or is abandoned after
// takeNowWait.
func (d *driver) takeNow(q *queueEntry, max int) ([]jetstream.Msg, error) {
	replies := make(chan *nats.Msg, max+1) // the messages, and the status that may end them
	sub, err := d.nc.ChanSubscribe(d.nc.NewInbox(), replies)
	if err != nil {
		return nil, err
	}
	req := fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, max)
	if err := d.nc.PublishRequest(pullSubject(q.stream), sub.Subject, req); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	guard := time.NewTimer(takeNowWait)
	defer guard.Stop()
	var ms []jetstream.Msg
	for len(ms) < max {
		select {
		case m := <-replies:
			if ended, err := pullEnded(m); ended {
				_ = sub.Unsubscribe()
				return ms, err
			}
			ms = append(ms, pulledMsg{m})
		case <-guard.C:
			// The engine's next receive waits (see await). Said at info
			// level: rare (a server that is overloaded, reconnecting or
			// electing a leader), and one of the two ways a message of a
			// queue can wait out ack_wait without a consumer having
			// failed (the other: a drain in await left unconfirmed).
			d.log.Info("a no-wait pull request got no answer and was abandoned; a message the server sent it at that moment comes back after ack_wait",
				"queue", q.name, "waited", takeNowWait, "received", len(ms))
			return d.abandon(sub, replies, ms), nil
		}
	}
	// The batch is complete: the server sends nothing more for it.
	_ = sub.Unsubscribe()
	return ms, nil
}

// abandon ends the pull request of sub, keeping what the server sent for
// it: sub drains (it unsubscribes, and the round trip of a flush confirms
// the server saw it), then the messages that came before are taken from
// replies and returned with ms. (One the server picked for the request
// just before it saw the unsubscription is still lost: see takeNow.)
func (d *driver) abandon(sub *nats.Subscription, replies chan *nats.Msg, ms []jetstream.Msg) []jetstream.Msg {
	_ = sub.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), drainWait)
	defer cancel()
	if err := d.nc.FlushWithContext(ctx); err != nil {
		d.log.Debug("confirming an abandoned pull request failed", "error", err)
	}
	for {
		select {
		case m := <-replies:
			if ended, _ := pullEnded(m); !ended {
				ms = append(ms, pulledMsg{m})
			}
		default:
			return ms
		}
	}
}

// pullEnded reports whether m is a status that ends a pull request, and
// the error it means, if any.
func pullEnded(m *nats.Msg) (bool, error) {
	status := m.Header.Get("Status")
	if status == "" || len(m.Data) > 0 {
		return false, nil
	}
	desc := m.Header.Get("Description")
	switch status {
	case "404", "408": // nothing (more) ready; other requests wait for it
		return true, nil
	case "409":
		if desc == "Consumer Deleted" {
			return true, jetstream.ErrConsumerDeleted
		}
	case "503":
		return true, nats.ErrNoResponders // no consumer (or stream) to ask
	}
	return true, fmt.Errorf("pull request refused: %s %s", status, desc)
}

// pulledMsg is a message of takeNow's pull request as a jetstream.Msg,
// which nats.go makes only of its own requests' messages. Its
// acknowledgements are nats.go's for core messages of a pull consumer.
type pulledMsg struct{ m *nats.Msg }

var _ jetstream.Msg = pulledMsg{}

// Metadata parses the message's reply subject, as jetstream.Msg does.
func (p pulledMsg) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := p.m.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered, NumPending: md.NumPending, Timestamp: md.Timestamp,
		Stream: md.Stream, Consumer: md.Consumer, Domain: md.Domain,
	}, nil
}

// Data returns the payload.
func (p pulledMsg) Data() []byte { return p.m.Data }

// Headers returns the headers.
func (p pulledMsg) Headers() nats.Header { return p.m.Header }

// Subject returns the subject the message was published to.
func (p pulledMsg) Subject() string { return p.m.Subject }

// Reply returns the acknowledgement subject.
func (p pulledMsg) Reply() string { return p.m.Reply }

// Ack acknowledges the message.
func (p pulledMsg) Ack() error { return p.m.Ack() }

// DoubleAck acknowledges the message and waits for the server to confirm.
func (p pulledMsg) DoubleAck(ctx context.Context) error { return p.m.AckSync(nats.Context(ctx)) }

// Nak asks for the message again at once.
func (p pulledMsg) Nak() error { return p.m.Nak() }

// NakWithDelay asks for the message again after delay.
func (p pulledMsg) NakWithDelay(delay time.Duration) error { return p.m.NakWithDelay(delay) }

// InProgress restarts the message's ack_wait.
func (p pulledMsg) InProgress() error { return p.m.InProgress() }

// Term ends the message's redeliveries.
func (p pulledMsg) Term() error { return p.m.Term() }

// TermWithReason ends the message's redeliveries; the reason is not sent.
func (p pulledMsg) TermWithReason(string) error { return p.m.Term() }
