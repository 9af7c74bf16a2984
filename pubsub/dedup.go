package pubsub

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// MetadataDedupKey holds a message's deduplication key (router.WithDedupKey,
// `quantumflow publish --dedup-key`). Within its queue's dedup window, a
// second publish with the same key on the same queue stores nothing and
// reports the first message's id instead (Driver.SendBatch rewrites the
// message's UUID).
const MetadataDedupKey = "quantumflow_dedup_key"

// Dedup windows: how long a queue remembers a dedup key, counted from the
// publish that stored it. The maximum bounds what a backend keeps (NATS
// holds every message id of the window in the server's memory; PostgreSQL
// a row per key in quantum_flow_dedup); the minimum is what every backend
// keeps apart from "no window" (NATS takes 0 as its own 2-minute default).
const (
	DefaultDedupWindow = 2 * time.Minute
	MinDedupWindow     = 100 * time.Millisecond
	MaxDedupWindow     = 24 * time.Hour
)

// MaxDedupKeyLen is the longest dedup key, in bytes. A key is UTF-8 text
// without control characters (it travels in a NATS header).
const MaxDedupKeyLen = 512

// ErrPayloadTooLarge is returned, wrapped with ErrInvalidArgument, for a
// message whose payload is over the backend's limit (PayloadLimiter).
var ErrPayloadTooLarge = errors.New("pubsub: payload too large")

// DefaultMaxPayload is the payload limit of the mem and PostgreSQL
// backends unless configured otherwise, and NATS's default max_payload
// (1 MiB): a message that fits one backend fits the others.
const DefaultMaxPayload = 1 << 20

// PayloadLimiter is implemented by drivers that cap a message's payload.
// The engine refuses a publish with a larger payload before it reaches
// the driver, naming the queue, the message, its size and the limit:
// nothing of that publish is stored.
type PayloadLimiter interface {
	// MaxPayload is the largest payload, in bytes, a message may have.
	MaxPayload() int
}

// DedupKeyOf returns msg's dedup key, empty when it has none.
func DedupKeyOf(msg *message.Message) string { return msg.Metadata.Get(MetadataDedupKey) }

// SetDedupKey sets msg's dedup key.
func SetDedupKey(msg *message.Message, key string) { msg.Metadata.Set(MetadataDedupKey, key) }

// ValidateDedupWindow checks a queue's dedup window: from MinDedupWindow
// to MaxDedupWindow.
func ValidateDedupWindow(w time.Duration) error {
	if w < MinDedupWindow || w > MaxDedupWindow {
		return fmt.Errorf("dedup window %s: want from %s to %s", w, MinDedupWindow, MaxDedupWindow)
	}
	return nil
}
