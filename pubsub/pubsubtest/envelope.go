package pubsubtest

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

// testInvalidEnvelope: a message whose id or metadata is not valid UTF-8
// text without NUL characters, or whose origin or recipient is not an
// instance id, is refused at Publish with ErrInvalidArgument, naming what
// is wrong, and nothing of its batch is stored; unicode that is valid
// passes unchanged (the reliability suite's envelope fuzzing found NATS
// replacing invalid bytes in metadata). An id no message can have is
// refused by every operation that takes ids, before anything changes
// (issue #15: PostgreSQL failed on it, NATS purged nothing and reported
// success).
func (s *suite) testInvalidEnvelope(t *testing.T) {
	ctx := context.Background()
	b := s.open(t)
	q := newQueueName()
	require.NoError(t, b.DeclareQueue(ctx, pubsub.QueueSpec{Name: q}))
	for _, c := range []struct {
		name, id, key, value, want string
	}{
		{"id not UTF-8", "id-\xff", "", "", "message id"},
		{"id with NUL", "id\x00x", "", "", "message id"},
		{"metadata value not UTF-8", "", "k", "\xfe\xff", `metadata "k"`},
		{"metadata key with NUL", "", "k\x00", "v", "metadata"},
		{"origin not an instance id", "", pubsub.MetadataOrigin, "../x", pubsub.MetadataOrigin},
		{"recipient not an instance id", "", pubsub.MetadataTo, "a b", pubsub.MetadataTo},
	} {
		good := newMessage("good")
		bad := newMessage("bad")
		if c.id != "" {
			bad.UUID = c.id
		}
		if c.key != "" {
			bad.Metadata.Set(c.key, c.value)
		}
		err := b.Publisher().Publish(q, good, bad)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, c.name)
		require.ErrorContains(t, err, c.want, c.name)
	}
	requireCounts(t, b, q, counts{})
	for _, id := range []string{"", "id\x00x", "id-\xff"} {
		query := pubsub.DeadLetterQuery{Queue: q, IDs: []string{id}}
		_, err := b.ListDeadLetters(ctx, query)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "list dead letters %q", id)
		_, err = b.RetryDeadLetters(ctx, query)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "retry dead letters %q", id)
		_, err = b.PurgeDeadLetters(ctx, query)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "purge dead letters %q", id)
		_, err = b.GetMessage(ctx, q, id)
		require.ErrorIs(t, err, pubsub.ErrInvalidArgument, "get message %q", id)
		require.ErrorIs(t, b.DeleteMessage(ctx, q, id), pubsub.ErrInvalidArgument, "delete message %q", id)
	}

	ch := subscribe(t, b, q)
	sent := message.NewMessage("ïd-☃", []byte("x"))
	sent.Metadata.Set("ключ", "värde ☃")
	publish(t, b, q, sent)
	msg := Receive(t, ch)
	require.Equal(t, sent.UUID, msg.UUID)
	require.Equal(t, "värde ☃", msg.Metadata.Get("ключ"))
	msg.Ack()
}
