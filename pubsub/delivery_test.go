package pubsub_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

func TestDelivery(t *testing.T) {
	t.Parallel()
	msg := message.NewMessage("id-1", []byte("{}"))
	require.Nil(t, pubsub.DeliveryOf(msg), "a message from elsewhere has no delivery")

	d := &pubsub.Delivery{Queue: "q", Attempt: 2}
	pubsub.AttachDelivery(msg, d)
	require.Same(t, d, pubsub.DeliveryOf(msg))
	require.Equal(t, pubsub.Outcome{}, d.Outcome())

	d.RetryAfter(-time.Second, errors.New("boom"))
	require.Equal(t, pubsub.Outcome{Retry: true, LastError: "boom"}, d.Outcome(), "a negative delay means now")

	d.MarkDeadLetter(pubsub.DeadLetterReason{Error: "gave up", Handler: "h", Service: "s"})
	out := d.Outcome()
	require.Equal(t, "gave up", out.LastError)
	require.Equal(t, &pubsub.DeadLetterReason{Error: "gave up", Handler: "h", Service: "s"}, out.DeadLetter)
}

func TestPriorityMetadata(t *testing.T) {
	t.Parallel()
	msg := message.NewMessage("id-1", nil)
	_, ok, err := pubsub.PriorityOf(msg)
	require.NoError(t, err)
	require.False(t, ok)

	pubsub.SetPriority(msg, pubsub.PriorityHigh)
	p, ok, err := pubsub.PriorityOf(msg)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, pubsub.PriorityHigh, p)

	msg.Metadata.Set(pubsub.MetadataPriority, "urgent")
	_, _, err = pubsub.PriorityOf(msg)
	require.ErrorContains(t, err, `quantumflow_priority="urgent" is not an integer`)
}
