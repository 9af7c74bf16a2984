package middleware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/middleware"
)

func TestBackoffDoublesAndCaps(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{Delay: 100 * time.Millisecond, MaxDelay: time.Second, Jitter: -1}
	require.Equal(t, 100*time.Millisecond, p.Backoff(1))
	require.Equal(t, 200*time.Millisecond, p.Backoff(2))
	require.Equal(t, 400*time.Millisecond, p.Backoff(3))
	require.Equal(t, 800*time.Millisecond, p.Backoff(4))
	require.Equal(t, time.Second, p.Backoff(5))
	require.Equal(t, time.Second, p.Backoff(1000), "no overflow")
}

func TestBackoffDefaults(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{Jitter: -1}
	require.Equal(t, time.Second, p.Backoff(1), "retry_delay_ms 1000")
	require.Equal(t, 5*time.Minute, p.Backoff(30), "capped at 5 minutes")
}

func TestBackoffJitterStaysInBoundsAndIncreases(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{Delay: time.Second, MaxDelay: time.Hour} // default jitter 0.2
	seen := map[time.Duration]bool{}
	for range 200 {
		d1, d2, d3 := p.Backoff(1), p.Backoff(2), p.Backoff(3)
		require.GreaterOrEqual(t, d1, 800*time.Millisecond)
		require.Less(t, d1, 1200*time.Millisecond)
		require.Less(t, d1, d2)
		require.Less(t, d2, d3)
		seen[d1] = true
	}
	require.Greater(t, len(seen), 1, "delays are jittered")
}

func TestRetrySchedulesRedeliveryWithoutSleeping(t *testing.T) {
	t.Parallel()
	cause := errors.New("db down")
	// An hour-long delay: if Retry slept, the test would time out.
	p := middleware.RetryPolicy{MaxRetries: 3, Delay: time.Hour, MaxDelay: 10 * time.Hour, Jitter: -1}
	for attempt, want := range map[int]time.Duration{1: time.Hour, 2: 2 * time.Hour, 3: 4 * time.Hour} {
		msg, d := delivered(t, attempt)
		_, err := p.Middleware(handlerReturning(cause))(msg)
		require.Equal(t, cause, err, "the error goes on so the router nacks")
		out := d.Outcome()
		require.True(t, out.Retry, "attempt %d", attempt)
		require.Equal(t, want, out.RetryDelay, "attempt %d", attempt)
		require.Equal(t, "db down", out.LastError)
		require.Nil(t, out.DeadLetter)
	}
}

func TestRetryExhaustedSchedulesNothing(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{MaxRetries: 3}
	msg, d := delivered(t, 4)
	_, err := p.Middleware(handlerReturning(errors.New("still down")))(msg)
	require.Error(t, err)
	require.False(t, d.Outcome().Retry)
}

func TestRetryZeroRetries(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 1)
	_, err := middleware.RetryPolicy{}.Middleware(handlerReturning(errors.New("x")))(msg)
	require.Error(t, err)
	require.False(t, d.Outcome().Retry)
}

func TestRetrySkipsPermanentErrors(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{MaxRetries: 3}
	msg, d := delivered(t, 1)
	_, err := p.Middleware(handlerReturning(middleware.Permanent(errors.New("bad json"))))(msg)
	require.True(t, middleware.IsPermanent(err))
	require.False(t, d.Outcome().Retry)
}

func TestRetrySuccessSchedulesNothing(t *testing.T) {
	t.Parallel()
	msg, d := delivered(t, 1)
	_, err := middleware.RetryPolicy{MaxRetries: 3}.Middleware(handlerReturning(nil))(msg)
	require.NoError(t, err)
	require.False(t, d.Outcome().Retry)
}

func TestRetryWithoutDeliveryPassesErrorThrough(t *testing.T) {
	t.Parallel()
	cause := errors.New("x")
	msg := message.NewMessage("plain", nil)
	_, err := middleware.RetryPolicy{MaxRetries: 3}.Middleware(handlerReturning(cause))(msg)
	require.Equal(t, cause, err)
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	require.NoError(t, middleware.Permanent(nil))
	base := errors.New("bad")
	p := middleware.Permanent(base)
	require.ErrorIs(t, p, base)
	require.Equal(t, "bad", p.Error())
	require.True(t, middleware.IsPermanent(p))
	require.True(t, middleware.IsPermanent(errors.Join(errors.New("ctx"), p)))
	require.False(t, middleware.IsPermanent(base))
	require.Equal(t, p, middleware.Permanent(p), "idempotent")
}

func TestBackoffNegativeDelayMeansImmediate(t *testing.T) {
	t.Parallel()
	p := middleware.RetryPolicy{Delay: -1}
	require.Zero(t, p.Backoff(1))
	require.Zero(t, p.Backoff(3))
}
