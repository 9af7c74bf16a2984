package nats

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkEnvelopeEncode measures turning a Watermill message (256-byte
// payload, two metadata entries) into the JetStream message with its
// headers, and reading the id and metadata back as a consumer does.
func BenchmarkEnvelopeEncode(b *testing.B) {
	payload := make([]byte, 256)
	msg := message.NewMessage("5714cce2-2045-49bd-a991-8e907ea6dd8c", payload)
	msg.Metadata.Set("quantumflow_published_at", "1795000000000000000")
	msg.Metadata.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b.ReportAllocs()
	for b.Loop() {
		m := natsMessage("QF.q.proposals_for_consensus_queue", msg, msg.UUID)
		if messageID(m.Header, "QF_proposals_for_consensus_queue", 1) != msg.UUID {
			b.Fatal("id lost in the envelope")
		}
		if len(metadataOf(m.Header, nil)) != 2 {
			b.Fatal("metadata lost in the envelope")
		}
	}
}
