package postgres

import (
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/quantumflow/pubsub"
)

// benchMessages returns n messages shaped like the topology's: a 256-byte
// JSON payload and two metadata entries.
func benchMessages(n int) []*message.Message {
	payload := []byte(`{"proposal":"p-000001","instance":"singularity-1","score":0.93,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	msgs := make([]*message.Message, n)
	for i := range msgs {
		m := message.NewMessage("00000000-0000-4000-8000-"+strconv.Itoa(100000000000+i), payload)
		m.Metadata.Set("quantumflow_published_at", "1795000000000000000")
		m.Metadata.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		msgs[i] = m
	}
	return msgs
}

// BenchmarkEnvelopeEncode measures turning one Publish of 100 messages into
// the insert statement's arrays (ids, payloads, metadata JSON, priorities).
func BenchmarkEnvelopeEncode(b *testing.B) {
	msgs := benchMessages(100)
	q := newQueries("public")
	b.ReportAllocs()
	for b.Loop() {
		r := rows{queue: "proposals_for_consensus_queue"}
		if err := r.add(msgs); err != nil {
			b.Fatal(err)
		}
		var pb pgx.Batch
		r.queueInsert(&pb, &q)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/msg")
}

// BenchmarkAckBatching measures collecting 100 settlements (90 acks, 8
// retries, 2 dead letters) from shuffled seqs into one batch and queueing
// its statements: the client-side cost of batched acks.
func BenchmarkAckBatching(b *testing.B) {
	q := newQueries("public")
	errText := "handler failed"
	b.ReportAllocs()
	for b.Loop() {
		var sb settleBatch
		for i := range 100 {
			l := &lease{seq: int64((i * 7919) % 100), owner: "owner"} // shuffled, as settlements arrive
			switch {
			case i%50 == 0:
				sb.addDeadLetter(l, pubsub.Settlement{Action: pubsub.SettleDeadLetter, Error: errText,
					DeadLetter: &pubsub.DeadLetterReason{Error: errText, Handler: "handle_proposal_for_consensus", Service: "centralcloud"}})
			case i%12 == 0:
				sb.addRequeue("proposals_for_consensus_queue", l, time.Second, true, true, errText)
			default:
				sb.acks = append(sb.acks, l.seq)
			}
		}
		var pb pgx.Batch
		if n := sb.queue(&pb, &q); n != 3 {
			b.Fatalf("queued %d statements, want 3", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/settlement")
}
