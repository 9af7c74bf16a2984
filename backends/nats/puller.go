package nats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Pull request timing: a request lives pullExpires on the server, which
// sends an idle heartbeat every pullHeartbeat while it has nothing to
// deliver. Two missed heartbeats mean the request is gone (the consumer's
// leader died, the server restarted) and a new one is sent.
const (
	pullExpires   = 15 * time.Second
	pullHeartbeat = time.Second
)

// errNoConsumer means the consumer did not answer: deleted, or not
// reachable right now.
var errNoConsumer = errors.New("consumer deleted or unavailable")

// puller speaks JetStream's pull protocol for one queue's fetcher: one
// request outstanding at a time, for as many messages as the fetcher asks,
// sent only once the previous one is used up or ended. A closing puller
// gets back, through a drain, every message the server sent it.
//
// nats.go's own iterator (jetstream.Consumer.Messages) was not used: in
// v1.55.0 it can skip sending the next request when a message arrives
// while the previous request is still being sent, and its missed-heartbeat
// check only runs within one long call of Next.
type puller struct {
	nc          *nats.Conn
	subject     string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	sub         *nats.Subscription
	ch          chan *nats.Msg
	reconnected chan nats.Status
	closed      chan struct{}
	check       *time.Ticker // missed-heartbeat check

	outstanding int  // messages asked for and not yet received; 0: no request
	noWait      bool // the outstanding request ends at once when the queue is empty
	lastSeen    time.Time
}

func newPuller(nc *nats.Conn, stream, consumer string, maxBatch int) (*puller, error) {
	p := &puller{
		nc:      nc,
		subject: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		// Room for a whole batch plus heartbeats and status messages, so
		// the connection never drops one for a slow consumer.
		ch:     make(chan *nats.Msg, maxBatch+64),
		closed: make(chan struct{}),
	}
	var err error
	if p.sub, err = nc.ChanSubscribe(nc.NewInbox(), p.ch); err != nil {
		return nil, err
	}
	p.sub.SetClosedHandler(func(string) { close(p.closed) })
	p.reconnected = nc.StatusChanged(nats.CONNECTED)
	p.check = time.NewTicker(pullHeartbeat)
	return p, nil
}

type pullRequest struct {
	Batch     int           `json:"batch"`
	Expires   time.Duration `json:"expires,omitempty"`
	Heartbeat time.Duration `json:"idle_heartbeat,omitempty"`
	NoWait    bool          `json:"no_wait,omitempty"`
}

// request asks for n messages. A waiting request lives pullExpires on the
// server; a noWait one returns what the queue holds now and ends.
func (p *puller) request(n int, noWait bool) error {
	r := pullRequest{Batch: n, Expires: pullExpires, Heartbeat: pullHeartbeat}
	if noWait {
		r = pullRequest{Batch: n, NoWait: true}
	}
	b, _ := json.Marshal(r) // plain fields always marshal
	if err := p.nc.PublishRequest(p.subject, p.sub.Subject, b); err != nil {
		return fmt.Errorf("pull request: %w", err)
	}
	p.outstanding, p.noWait, p.lastSeen = n, noWait, time.Now()
	return nil
}

// receive accounts for a message from the server: it returns true for a
// message of the queue, false for a status message (which may end the
// request, or mean the consumer is gone: errNoConsumer).
func (p *puller) receive(m *nats.Msg) (bool, error) {
	p.lastSeen = time.Now()
	if status := statusOf(m); status != "" {
		return false, p.onStatus(status, m.Header.Get("Description"))
	}
	if p.outstanding > 0 {
		p.outstanding--
	}
	return true, nil
}

// tick runs on p.check: with neither message nor heartbeat for two and a
// half heartbeat intervals, the request is gone (the consumer's leader
// died, the server restarted) and a new one may be sent.
func (p *puller) tick() {
	if p.outstanding > 0 && time.Since(p.lastSeen) > 2*pullHeartbeat+pullHeartbeat/2 {
		p.outstanding = 0
	}
}

// lost forgets the outstanding request: one sent before a reconnect may
// be lost with the old connection's server.
func (p *puller) lost() { p.outstanding = 0 }

// statusOf returns the status code of a JetStream status message, or "".
func statusOf(m *nats.Msg) string {
	if len(m.Data) != 0 || m.Header == nil {
		return ""
	}
	return m.Header.Get("Status")
}

func (p *puller) onStatus(status, description string) error {
	if status == "100" {
		// Idle heartbeat: the request is alive.
		return nil
	}
	// Any other status ends the request.
	p.outstanding = 0
	switch status {
	case "503":
		// No responders: the consumer (or its stream, or JetStream) is
		// not there. Asking again at once would spin.
		return errNoConsumer
	case "409":
		if strings.Contains(strings.ToLower(description), "consumer deleted") {
			return errNoConsumer
		}
	}
	// 404, 408 (request ended or expired), 409 (leadership change, too
	// many waiting requests, ...): send another.
	return nil
}

// close stops pulling and returns the messages the server had already
// sent (and may send until it sees the unsubscribe): the caller puts them
// back.
func (p *puller) close() []*nats.Msg {
	p.check.Stop()
	p.nc.RemoveStatusListener(p.reconnected)
	var rest []*nats.Msg
	if err := p.sub.Drain(); err == nil {
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case m := <-p.ch:
				if statusOf(m) == "" {
					rest = append(rest, m)
				}
			case <-p.closed:
				break wait
			case <-timeout:
				_ = p.sub.Unsubscribe()
				break wait
			}
		}
	}
	for {
		select {
		case m := <-p.ch:
			if statusOf(m) == "" {
				rest = append(rest, m)
			}
		default:
			return rest
		}
	}
}
