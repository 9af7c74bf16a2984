package pubsubtest

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
)

// testInbox checks what middleware.Inbox relies on: a message whose ack
// was lost after its handler ran comes back with the same id on the same
// queue, so the Inbox acks it without running the handler again.
func (s *suite) testInbox(t *testing.T) {
	b := s.open(t)
	queue := newQueueName()
	ch := subscribe(t, b, queue)
	sent := []*message.Message{newMessage("a"), newMessage("b"), newMessage("c")}
	publish(t, b, queue, sent...)

	runs := map[string]int{}
	in := middleware.NewInbox(middleware.InboxConfig{})
	handle := in.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		runs[msg.UUID]++
		return nil, nil
	})
	deliveries := map[string]int{}
	for range 2 * len(sent) {
		msg := Receive(t, ch)
		delivery(t, msg, queue)
		deliveries[msg.UUID]++
		_, err := handle(msg)
		require.NoError(t, err)
		if deliveries[msg.UUID] == 1 {
			msg.Nack() // the handler ran; its ack is lost
			continue
		}
		msg.Ack()
	}
	for _, m := range sent {
		require.Equal(t, 2, deliveries[m.UUID], "message %s delivered twice", m.UUID)
		require.Equal(t, 1, runs[m.UUID], "message %s handled once", m.UUID)
	}
	require.EqualValues(t, len(sent), in.Duplicates())
	requireCounts(t, b, queue, counts{})
}
