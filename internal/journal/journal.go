// Package journal records, one JSON line per message, what a service
// process published and consumed, so that a test or script can account
// for every message across processes that are killed and restarted
// (e2e, scripts/e2e.sh). It is not meant for production: every line
// carries the message's payload.
//
// A Journal appends to its file opened with O_APPEND, one write per line
// (per batch of lines on publish), with no buffer in the process: a line
// written is in the operating system's page cache and survives a SIGKILL
// of the process. Several processes may append to one file.
//
//	j, err := journal.Open(path, cfg.Name, cfg.InstanceID)
//	r, err := router.New(router.Config{..., Middlewares: []message.HandlerMiddleware{j.Middleware}, WrapPublisher: j.WrapPublisher})
//
// The middleware writes "consumed" before the handler's nil reaches the
// router, that is before the ack: a process killed between the two leaves
// a line for a message that is delivered again (a duplicate, never a
// loss). The publisher writes "published" once Publish returned nil: a
// process killed between the two leaves a message with no line.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Events.
const (
	// Published: Publish returned nil for the message.
	Published = "published"
	// Consumed: the handler succeeded; the ack follows.
	Consumed = "consumed"
	// DeadLettered: the handler failed for good; the backend moves the
	// message to the dead letters when it is acked.
	DeadLettered = "dead_lettered"
)

// Entry is one line of a journal.
type Entry struct {
	Event string `json:"event"`
	// Queue is the queue the message was published to or delivered from,
	// as the backend names it: "QUEUE@INSTANCE" for an instance's copy on
	// an addressed or broadcast queue.
	Queue string `json:"queue"`
	// ID is the message id.
	ID string `json:"id"`
	// Service and Instance are the process's: the publisher of a
	// published message, the consumer of a consumed one.
	Service  string `json:"service"`
	Instance string `json:"instance"`
	PID      int    `json:"pid"`
	// Attempt is the delivery's attempt (consumed and dead-lettered only).
	Attempt int `json:"attempt,omitempty"`
	// Origin and To are the message's pubsub.MetadataOrigin and
	// pubsub.MetadataTo.
	Origin string `json:"origin,omitempty"`
	To     string `json:"to,omitempty"`
	// Payload is the message's payload when it is JSON, RawPayload when
	// it is not.
	Payload    json.RawMessage `json:"payload,omitempty"`
	RawPayload []byte          `json:"raw_payload,omitempty"`
	// Error is the handler's error of a dead-lettered message.
	Error string    `json:"error,omitempty"`
	Time  time.Time `json:"time"`
}

// PayloadBytes returns the message's payload.
func (e Entry) PayloadBytes() []byte {
	if e.Payload != nil {
		return e.Payload
	}
	return e.RawPayload
}

// Journal appends entries to a file. It is safe for concurrent use.
type Journal struct {
	service, instance string
	pid               int

	mu     sync.Mutex
	f      *os.File
	closed bool
}

// ErrClosed is returned by writes to a closed Journal.
var ErrClosed = errors.New("journal: closed")

// Open opens the journal at path for a process of service running as
// instance, creating the file if needed. When the file's last line was
// cut short (its writer was killed in the middle of a write), it ends that
// line first, so that the cut line and this process's first line stay
// apart.
func Open(path, service, instance string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := endCutLine(f, path); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Journal{service: service, instance: instance, pid: os.Getpid(), f: f}, nil
}

func endCutLine(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, st.Size()-1); err != nil {
		return fmt.Errorf("journal: %s: %w", path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("journal: %s: %w", path, err)
	}
	return nil
}

// Close closes the file. Later writes fail with ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return j.f.Close()
}

// write appends entries in one write.
func (j *Journal) write(entries ...Entry) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // ends each entry with '\n'
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("journal: message %s: %w", e.ID, err)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j *Journal) entry(event, queue string, msg *message.Message) Entry {
	e := Entry{
		Event: event, Queue: queue, ID: msg.UUID, Service: j.service, Instance: j.instance, PID: j.pid,
		Origin: msg.Metadata.Get(pubsub.MetadataOrigin), To: msg.Metadata.Get(pubsub.MetadataTo),
		Time: time.Now().UTC(),
	}
	if json.Valid(msg.Payload) {
		e.Payload = json.RawMessage(msg.Payload)
	} else {
		e.RawPayload = msg.Payload
	}
	return e
}

// Middleware records each message its handler succeeded with (consumed),
// or failed with for good (dead-lettered), before the router settles it.
// Add it outside the router's own stack (router.Config.Middlewares), where
// a dead letter is a nil error with the delivery marked. When the line
// cannot be written the message is not acked: the write error makes it
// a failed attempt.
func (j *Journal) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil {
			return out, err
		}
		event, queue, attempt, cause := Consumed, message.SubscribeTopicFromCtx(msg.Context()), 0, ""
		if d := pubsub.DeliveryOf(msg); d != nil {
			queue, attempt = d.Queue, d.Attempt
			if dl := d.Outcome().DeadLetter; dl != nil {
				event, cause = DeadLettered, dl.Error
			}
		}
		e := j.entry(event, queue, msg)
		e.Attempt, e.Error = attempt, cause
		if err := j.write(e); err != nil {
			return out, err
		}
		return out, nil
	}
}

// WrapPublisher returns p recording each message of a Publish that
// returned nil (router.Config.WrapPublisher). The queue recorded is the
// one p publishes to: "QUEUE@INSTANCE" for each instance's copy.
func (j *Journal) WrapPublisher(p message.Publisher) message.Publisher {
	return &publisher{j: j, p: p}
}

type publisher struct {
	j *Journal
	p message.Publisher
}

func (p *publisher) Publish(queue string, msgs ...*message.Message) error {
	if err := p.p.Publish(queue, msgs...); err != nil {
		return err
	}
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = p.j.entry(Published, queue, m)
	}
	if err := p.j.write(entries...); err != nil {
		return fmt.Errorf("published %d message(s) to %s, but %w", len(msgs), queue, err)
	}
	return nil
}

func (p *publisher) Close() error { return p.p.Close() }

// Read returns the entries of a journal, and how many lines it skipped
// because they do not parse: lines cut short by a SIGKILL in the middle of
// a write.
func Read(r io.Reader) (entries []Entry, cut int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		if json.Unmarshal(line, &e) != nil || e.Event == "" || e.ID == "" {
			cut++
			continue
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return entries, cut, fmt.Errorf("journal: %w", err)
	}
	return entries, cut, nil
}

// ReadFile reads the journal at path (see Read); a file that does not
// exist is an empty journal.
func ReadFile(path string) (entries []Entry, cut int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	return Read(f)
}
