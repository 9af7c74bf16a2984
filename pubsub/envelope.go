package pubsub

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
)

// validEnvelope checks what every backend stores as text: the message id
// and its metadata keys and values must be valid UTF-8 without NUL
// characters. PostgreSQL refuses anything else, and JSON (NATS's
// metadata header) would silently replace invalid bytes, so a message
// would come back with metadata it was not published with; every backend
// refuses it at Publish instead.
func validEnvelope(m *message.Message) error {
	if !validText(m.UUID) {
		return fmt.Errorf("message id %q: not valid UTF-8 text without NUL characters", m.UUID)
	}
	for k, v := range m.Metadata {
		if !validText(k) || !validText(v) {
			return fmt.Errorf("message %s: metadata %q: not valid UTF-8 text without NUL characters", m.UUID, k)
		}
	}
	return nil
}

func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// ValidateMessageID returns an error wrapping ErrInvalidArgument unless id
// can be a message's id: not empty, UTF-8 text without NUL characters, as
// Publish requires (validEnvelope). Operations that take ids (dead-letter
// queries, GetMessage, DeleteMessage) refuse any other before the driver
// sees it, the same on every backend: PostgreSQL would fail on it and
// NATS look for it, find nothing and report success.
func ValidateMessageID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty message id", ErrInvalidArgument)
	case !validText(id):
		return fmt.Errorf("%w: message id %q: not valid UTF-8 text without NUL characters", ErrInvalidArgument, id)
	}
	return nil
}

// ValidateMessage refuses what no backend stores: an id or metadata that
// is not UTF-8 text without NUL (validEnvelope), a malformed priority,
// delivery time or expiry, an origin or recipient that is not an
// instance id (checkMetadata), an empty or overlong dedup key, a payload
// over maxPayload (0: no limit). Publish checks every message with it
// before the driver sees them; a driver's own publish path (PostgreSQL's
// PublishTx) calls it.
func ValidateMessage(m *message.Message, maxPayload int) error {
	if err := validEnvelope(m); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := checkMetadata(m); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if k, ok := m.Metadata[MetadataDedupKey]; ok && (k == "" || len(k) > MaxDedupKeyLen || !utf8.ValidString(k) || strings.ContainsFunc(k, unicode.IsControl)) {
		return fmt.Errorf("%w: message %s: metadata %s: want 1-%d bytes of UTF-8 text without control characters, got %d bytes", ErrInvalidArgument, m.UUID, MetadataDedupKey, MaxDedupKeyLen, len(k))
	}
	if maxPayload > 0 && len(m.Payload) > maxPayload {
		return fmt.Errorf("%w: %w: message %s: payload is %d bytes, over the backend's limit of %d bytes", ErrInvalidArgument, ErrPayloadTooLarge, m.UUID, len(m.Payload), maxPayload)
	}
	return nil
}
