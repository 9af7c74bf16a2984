package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFanOutTracker checks that a broadcast message counts once every
// instance has its copy, that a second copy to one instance is a
// duplicate and not a stand-in for another instance's, and that a message
// an instance never got is missing.
func TestFanOutTracker(t *testing.T) {
	t.Parallel()
	tmpl, err := payloadTemplate(256)
	require.NoError(t, err)
	s := schedule{start: time.Now().Add(-time.Second), interval: time.Millisecond, n: 3}
	tr := newFanOutTracker(s, 2)

	tr.observe(0, newPayload(tmpl, 0))
	tr.observe(0, newPayload(tmpl, 0))
	require.Zero(t, tr.received.Load(), "one instance's copy twice is not every instance's")
	require.EqualValues(t, 1, tr.extra.Load())
	tr.observe(1, newPayload(tmpl, 0))
	tr.observe(1, newPayload(tmpl, 1))
	tr.observe(0, newPayload(tmpl, 1))
	tr.observe(1, newPayload(tmpl, 2))
	tr.observe(2, newPayload(tmpl, 2))
	tr.observe(0, newPayload(tmpl, 3))
	require.EqualValues(t, 2, tr.bad.Load(), "an unknown instance and a message beyond the schedule")

	require.EqualValues(t, 2, tr.received.Load())
	require.EqualValues(t, 5, tr.delivered.Load())
	lat, missing := tr.result(time.Now())
	require.EqualValues(t, 1, missing, "message 2 never reached instance 0")
	require.Equal(t, 3, lat.Samples)
}

// TestInstanceProbes checks that ready closes once every instance has
// had its probe, whatever the order and repetitions.
func TestInstanceProbes(t *testing.T) {
	t.Parallel()
	p := newInstanceProbes(3)
	p.mark(2)
	p.mark(2)
	require.Equal(t, []int{0, 1}, p.waiting())
	p.mark(0)
	select {
	case <-p.ready:
		t.Fatal("ready before every instance had its probe")
	default:
	}
	p.mark(1)
	<-p.ready
	require.Empty(t, p.waiting())
}

// TestAwaitLateCopies checks what a broadcast run says of copies missing
// after the drain: nothing when none is, when the last one came, and how
// many never came within the wait (cut short here by the context).
func TestAwaitLateCopies(t *testing.T) {
	t.Parallel()
	tmpl, err := payloadTemplate(256)
	require.NoError(t, err)
	s := schedule{start: time.Now().Add(-time.Second), interval: time.Millisecond, n: 1}
	tr := newFanOutTracker(s, 2)
	tr.observe(0, newPayload(tmpl, 0))
	tr.observe(1, newPayload(tmpl, 0))
	require.Empty(t, awaitLateCopies(t.Context(), tr, 2))

	tr = newFanOutTracker(s, 2)
	tr.observe(0, newPayload(tmpl, 0))
	time.AfterFunc(200*time.Millisecond, func() { tr.observe(1, newPayload(tmpl, 0)) })
	require.Regexp(t, `^; the 1 came ([2-9]00ms|[0-9.]+s) later$`, awaitLateCopies(t.Context(), tr, 2))

	tr = newFanOutTracker(s, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	require.Empty(t, awaitLateCopies(ctx, tr, 2), "cancelled: the run is ending anyway")
}
