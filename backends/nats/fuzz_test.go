package nats

import (
	"errors"
	"maps"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/quantumflow/quantumflow/pubsub"
)

// fuzzSecret is the password every fuzzed URL carries: no error may show
// it.
const fuzzSecret = "Fz-Secret-9"

// FuzzParseURL: any URL after the credentials either configures the
// backend or is refused with an invalid-URL error that does not show the
// password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"localhost:4222", "h:4222?replicas=3&storage=memory", "h?ack_wait=5s&publish_timeout=1s",
		"h?servers=nats://a:1,nats://b:2", "h?max_age=-1&max_bytes=1GB", "h/path", "h?prefix=..&name=%00", "h?replicas=99",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		if strings.Contains(rest, fuzzSecret) {
			return
		}
		u, err := url.Parse("nats://fuzzuser:" + fuzzSecret + "@" + rest)
		if err != nil {
			return
		}
		_, err = parseURL(u)
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), fuzzSecret) {
			t.Fatalf("error shows the password: %v", err)
		}
		if !errors.Is(err, pubsub.ErrInvalidURL) {
			t.Fatalf("refused without ErrInvalidURL: %v", err)
		}
	})
}

// FuzzEnvelope: a message's id and metadata come back from its JetStream
// form unchanged, and any Qf-Metadata header another client wrote decodes
// without a panic.
func FuzzEnvelope(f *testing.F) {
	f.Add("id-1", "", "key", "value", `{"a":"b"}`)
	f.Add("id-1", "id-1", "", "", `not json`)
	f.Add("ünïcødé", "pub-7", "☃", "\xff\xfe", `{"a":1}`)
	f.Add("id", "", "Nats-Msg-Id", "x", `[]`)
	f.Fuzz(func(t *testing.T, id, publishID, key, value, rawMeta string) {
		if id == "" || !fuzzValidText(id) || !fuzzValidText(key) || !fuzzValidText(value) {
			return // refused at Publish (pubsub's envelope check), never reaching the driver
		}
		msg := message.NewMessage(id, []byte("payload"))
		if key != "" {
			msg.Metadata.Set(key, value)
		}
		m := natsMessage("subject", msg, publishID)
		if got := messageID(m.Header, "STREAM", 7); got != id {
			t.Fatalf("id %q came back as %q", id, got)
		}
		if len(msg.Metadata) > 0 {
			if got := metadataOf(m.Header, nil); !maps.Equal(got, map[string]string(msg.Metadata)) {
				t.Fatalf("metadata %v came back as %v", msg.Metadata, got)
			}
		}
		_ = metadataOf(nats.Header{hdrMetadata: []string{rawMeta}, key: []string{value}}, nil)
	})
}

// fuzzValidText is pubsub's envelope check: UTF-8 without NUL.
func fuzzValidText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
