package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Publish-side deduplication. A message with a dedup key is published
// with Nats-Msg-Id "qf-key:<key>" instead of its id (which travels as
// Qf-Id), so JetStream drops a second message with the key within the
// stream's duplicate window, which is the queue's dedup window. A
// duplicate's ack names the sequence of the stored message: its id is
// read from there, or from this driver's cache of the last dedupCacheKeys
// keys it stored (checked against that sequence, so a cache that outlives
// the server's window by a round trip is never believed). When the stored
// message has left the queue (consumed) and its key is not in this
// driver's cache (another process stored it, or many keys came after it),
// its id is no longer known: the duplicate's UUID becomes "".

// dedupPrefix keeps keys apart from message ids in Nats-Msg-Id.
const dedupPrefix = "qf-key:"

func dedupMsgID(key string) string { return dedupPrefix + key }

// dedupCacheKeys bounds the keys cached per queue (see doc.go). The cache
// spares a duplicate's publish a read of the stored message, and knows the
// ids of messages already consumed; a duplicate usually comes soon after
// its first (a retry). Unbounded, it held a whole window of keys: at 100k
// keyed messages a second and the default 2 minutes, 12M keys at 162
// bytes each besides the key and id strings, over 2 GB.
const dedupCacheKeys = 1 << 14

// storedKey is what the driver remembers of a key it stored: the id and
// stream sequence of the message.
type storedKey struct {
	id  string
	seq uint64
}

// learnFirstIDs sets the UUID of each keyed message JetStream took for a
// duplicate to the id of the message stored with its key, and remembers
// the keys stored.
func (d *driver) learnFirstIDs(ctx context.Context, q *queueEntry, msgs []*message.Message, out []*nats.Msg, acks map[*nats.Msg]*jetstream.PubAck) error {
	now := time.Now()
	var dups []int
	q.dedupMu.Lock()
	for i, m := range msgs {
		key, ack := m.Metadata[pubsub.MetadataDedupKey], acks[out[i]]
		switch {
		case key == "" || ack == nil:
		case ack.Duplicate:
			dups = append(dups, i)
		default:
			q.dedup.Add(key, storedKey{id: m.UUID, seq: ack.Sequence}, now, q.window)
		}
	}
	q.dedupMu.Unlock()
	for _, i := range dups {
		m, seq := msgs[i], acks[out[i]].Sequence
		key := m.Metadata[pubsub.MetadataDedupKey]
		q.dedupMu.Lock()
		known, ok := q.dedup.Lookup(key, now)
		q.dedupMu.Unlock()
		if ok && known.seq == seq {
			m.UUID = known.id
			continue
		}
		id, err := d.storedID(ctx, q, seq)
		if err != nil {
			return fmt.Errorf("message %s is a duplicate of key %q, stored as sequence %d: reading its id: %w", m.UUID, key, seq, err)
		}
		m.UUID = id
		if id != "" {
			q.dedupMu.Lock()
			q.dedup.Add(key, storedKey{id: id, seq: seq}, now, q.window)
			q.dedupMu.Unlock()
		}
	}
	return nil
}

// storedID returns the id of the message at seq of q's stream, "" when it
// is no longer there.
func (d *driver) storedID(ctx context.Context, q *queueEntry, seq uint64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	st, err := d.js.Stream(ctx, q.stream)
	if err != nil {
		return "", err
	}
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return messageID(raw.Header, q.stream, seq), nil
}

// headerReserve is the part of the server's max_payload kept for a
// message's headers (its id, metadata): MaxPayload is the rest.
const headerReserve = 8 << 10

// MaxPayload is the largest payload a message may have: the server's
// max_payload (1 MiB by default) less headerReserve.
func (d *driver) MaxPayload() int { return max(int(d.nc.MaxPayload())-headerReserve, 1) }

// checkSize refuses a message whose payload and headers together exceed
// the server's max_payload (metadata larger than headerReserve), before
// anything of the publish is sent.
func (d *driver) checkSize(m *message.Message, nm *nats.Msg) error {
	size := len(nm.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range nm.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if limit := int(d.nc.MaxPayload()); size > limit {
		return fmt.Errorf("%w: %w: message %s: payload and headers are %d bytes, over the server's max_payload of %d bytes",
			pubsub.ErrInvalidArgument, pubsub.ErrPayloadTooLarge, m.UUID, size, limit)
	}
	return nil
}
