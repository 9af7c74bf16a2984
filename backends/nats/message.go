package nats

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Message headers. The Watermill message id travels as Nats-Msg-Id (which
// also makes JetStream drop a re-published duplicate), or as Qf-Id when
// the publish id has to differ (a dead letter sent back to its queue).
// Metadata travels as one JSON header: metadata keys and values are
// arbitrary strings, and a header value must not contain a line break.
const (
	hdrMsgID      = "Nats-Msg-Id"
	hdrID         = "Qf-Id"
	hdrMetadata   = "Qf-Metadata"
	hdrDeadLetter = "Qf-Dead-Letter"
	hdrQueue      = "Qf-Queue"
)

// natsMessage builds the JetStream message for msg, published with the
// given Nats-Msg-Id.
func natsMessage(subject string, msg *message.Message, publishID string) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: msg.Payload, Header: nats.Header{}}
	if publishID != "" {
		m.Header[hdrMsgID] = []string{publishID}
	}
	if msg.UUID != publishID {
		m.Header[hdrID] = []string{msg.UUID}
	}
	if md := withoutKey(msg.Metadata, publishID); len(md) > 0 {
		b, _ := json.Marshal(map[string]string(md)) // a map of strings always marshals
		m.Header[hdrMetadata] = []string{string(b)}
	}
	return m
}

// withoutKey returns md without its dedup key when publishID carries it:
// the key then travels once, in Nats-Msg-Id (metadataOf puts it back).
// Every header is scanned by the server for each of the headers it looks
// for, so a keyed message's headers are kept short.
func withoutKey(md message.Metadata, publishID string) message.Metadata {
	key, ok := strings.CutPrefix(publishID, dedupPrefix)
	if !ok || md[pubsub.MetadataDedupKey] != key {
		return md
	}
	if len(md) == 1 {
		return nil
	}
	out := make(message.Metadata, len(md)-1)
	for k, v := range md {
		if k != pubsub.MetadataDedupKey {
			out[k] = v
		}
	}
	return out
}

// messageID returns the Watermill id of a stored message; a message
// published by another client without one is named after its stream
// sequence, which is stable across redeliveries.
func messageID(h nats.Header, stream string, seq uint64) string {
	if v := h.Get(hdrID); v != "" {
		return v
	}
	if v := h.Get(hdrMsgID); v != "" {
		return v
	}
	return stream + ":" + strconv.FormatUint(seq, 10)
}

// metadataOf returns a stored message's Watermill metadata, filled into
// md (a new message's empty map: one allocation less per delivery).
// Messages from other clients have plain headers: those become metadata,
// except NATS's own.
func metadataOf(h nats.Header, md message.Metadata) message.Metadata {
	if md == nil {
		md = message.Metadata{}
	}
	if key, ok := strings.CutPrefix(h.Get(hdrMsgID), dedupPrefix); ok {
		md[pubsub.MetadataDedupKey] = key
	}
	if v := h.Get(hdrMetadata); v != "" {
		// A variable of its own: the one Unmarshal points to lives on the
		// heap, and only messages with metadata need it.
		m := map[string]string(md)
		if err := json.Unmarshal([]byte(v), &m); err == nil {
			return m
		}
	}
	for k, vs := range h {
		if len(vs) == 0 || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Qf-") {
			continue
		}
		md[k] = vs[0]
	}
	return md
}

// priorityOf returns a message's priority: its own, else the queue's.
func priorityOf(md message.Metadata, queuePriority pubsub.Priority) pubsub.Priority {
	if v := md.Get(pubsub.MetadataPriority); v != "" {
		if p, err := strconv.Atoi(v); err == nil {
			return pubsub.Priority(p)
		}
	}
	return queuePriority
}

// deadLetterInfo is what a dead letter records besides payload and id,
// stored as JSON in the Qf-Dead-Letter header.
type deadLetterInfo struct {
	Queue          string            `json:"queue"`
	Error          string            `json:"error"`
	Attempts       int               `json:"attempts"`
	Handler        string            `json:"handler,omitempty"`
	Service        string            `json:"service,omitempty"`
	FirstFailureAt time.Time         `json:"first_failure_at,omitzero"`
	LastFailureAt  time.Time         `json:"last_failure_at,omitzero"`
	PublishedAt    time.Time         `json:"published_at,omitzero"`
	SourceSeq      uint64            `json:"source_seq"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}
