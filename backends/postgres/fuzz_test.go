package postgres

import (
	"errors"
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// fuzzSecret is the password every fuzzed URL carries: no error may show
// it.
const fuzzSecret = "Fz-Secret-9"

// FuzzParseURL: any URL after the credentials either configures the
// backend or is refused with an error that does not show the password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"localhost/db", "127.0.0.1:5432/db?sslmode=disable&lease=5s", "h/db?schema=qf&listen=false",
		"h/db?batch=0", "h/db?lease=-1s", "h/db?unknown=1", "h/db?poll_interval=1h&ack_delay=x", "[::1]:5432/db?schema=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		if strings.Contains(rest, fuzzSecret) {
			return
		}
		u, err := url.Parse("postgres://fuzzuser:" + fuzzSecret + "@" + rest)
		if err != nil {
			return
		}
		if _, _, err := parseConfig(u); err != nil && strings.Contains(err.Error(), fuzzSecret) {
			t.Fatalf("error shows the password: %v", err)
		}
	})
}

// FuzzEnvelope: a message either is refused as an invalid argument before
// anything is written, or its id, payload and metadata come back from the
// stored form unchanged.
func FuzzEnvelope(f *testing.F) {
	f.Add("id-1", "key", "value", []byte(`{"a":1}`))
	f.Add("", "", "", []byte{})
	f.Add("id\x00nul", "k", "v", []byte("x"))
	f.Add("id", "k\x00", "v", []byte(nil))
	f.Add("ünïcødé", "☃", "\xff\xfe", []byte{0, 1, 2})
	f.Add("id", "_qf_priority", "high", []byte("p"))
	f.Fuzz(func(t *testing.T, id, key, value string, payload []byte) {
		msg := message.NewMessage(id, payload)
		if key != "" {
			msg.Metadata.Set(key, value)
		}
		var r rows
		if err := r.add([]*message.Message{msg}); err != nil {
			if !errors.Is(err, pubsub.ErrInvalidArgument) {
				t.Fatalf("refused without ErrInvalidArgument: %v", err)
			}
			if r.len() != 0 {
				t.Fatalf("refused message kept: %d rows", r.len())
			}
			return
		}
		if r.ids[0] != id || string(r.payloads[0]) != string(payload) {
			t.Fatalf("id or payload changed: %q %q", r.ids[0], r.payloads[0])
		}
		got := map[string]string{}
		if err := unmarshalMetadata([]byte(r.metadata[0]), &got); err != nil {
			t.Fatalf("stored metadata %q does not decode: %v", r.metadata[0], err)
		}
		if !maps.Equal(got, map[string]string(msg.Metadata)) {
			t.Fatalf("metadata %v came back as %v", msg.Metadata, got)
		}
	})
}
