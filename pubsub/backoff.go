package pubsub

import (
	"context"
	"time"
)

// Backoff is a doubling delay between tries of something that failed on
// a transient condition: Initial, then twice as long each time, never
// more than Max. The zero value waits 100ms doubling to 5s. It is not safe
// for concurrent use.
type Backoff struct {
	// Initial is the first delay. Defaults to 100ms.
	Initial time.Duration
	// Max caps the delay. Defaults to 5s.
	Max time.Duration

	next time.Duration
}

// Next returns the delay before the next try and doubles the one after.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Initial
		if b.next <= 0 {
			b.next = 100 * time.Millisecond
		}
	}
	d := b.next
	limit := b.Max
	if limit <= 0 {
		limit = 5 * time.Second
	}
	b.next = min(2*b.next, limit)
	return min(d, limit)
}

// Reset starts the delays again from Initial, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for Next, or until ctx is done, and returns ctx's error then.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
