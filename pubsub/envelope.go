package pubsub

import (
	"fmt"
	"strings"
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
