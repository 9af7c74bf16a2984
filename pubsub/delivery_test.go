package pubsub_test

import (
	"context"
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

type ctxKey struct{}

func TestDeliveryContext(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(time.Hour)
	parent, cancelParent := context.WithDeadline(context.WithValue(t.Context(), ctxKey{}, "v"), deadline)
	defer cancelParent()
	d := &pubsub.Delivery{Queue: "q", Attempt: 1}
	dc := pubsub.NewDeliveryContext(parent, d)
	msg := message.NewMessage("id-1", nil)
	msg.SetContext(dc)

	require.Same(t, d, pubsub.DeliveryOf(msg))
	require.Equal(t, "v", dc.Value(ctxKey{}), "the parent's values show through")
	got, ok := dc.Deadline()
	require.True(t, ok)
	require.Equal(t, deadline, got)
	require.NoError(t, dc.Err())

	// A derived context (the router's timeout) that ends first unregisters;
	// one still open when the delivery ends is canceled by it.
	early, cancelEarly := context.WithTimeout(dc, time.Hour)
	cancelEarly()
	require.ErrorIs(t, early.Err(), context.Canceled)
	derived, cancelDerived := context.WithTimeout(dc, time.Hour)
	defer cancelDerived()
	select {
	case <-dc.Done():
		t.Fatal("done before End")
	case <-derived.Done():
		t.Fatal("derived context done before End")
	default:
	}

	dc.End()
	dc.End() // idempotent
	<-dc.Done()
	require.ErrorIs(t, dc.Err(), context.Canceled)
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("End did not cancel the derived context")
	}
	require.ErrorIs(t, derived.Err(), context.Canceled)

	// After End, a new derived context is done at once.
	late, cancelLate := context.WithCancel(dc)
	defer cancelLate()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a context derived after End is not done")
	}
}

func TestDeliveryContextParentEnded(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	<-parent.Done()
	dc := pubsub.NewDeliveryContext(parent, &pubsub.Delivery{})
	require.NoError(t, dc.Err(), "not done until End: the backend decides when the delivery is over")
	dc.End()
	require.ErrorIs(t, dc.Err(), context.DeadlineExceeded, "the parent's error once both ended")
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
