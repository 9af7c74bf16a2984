package middleware

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// Retry policy defaults.
const (
	DefaultRetryDelay    = time.Second
	DefaultMaxRetryDelay = 5 * time.Minute
	DefaultJitter        = 0.2
)

// RetryPolicy schedules failed messages for a delayed redelivery by the
// backend, with exponential backoff: the first retry waits Delay, each
// later one twice as long as the one before, each randomly spread by
// Jitter, none longer than MaxDelay.
//
// It never sleeps: the worker is released at once, the message waits in
// the backend without holding up the other messages of its queue, and its
// attempt count lives with it (pubsub.Delivery.Attempt).
type RetryPolicy struct {
	// MaxRetries is how many times a message is retried after its first
	// attempt fails; 0 means never (the first failure dead-letters it).
	MaxRetries int
	// Delay is the delay before the first retry. Defaults to 1s
	// (retry_delay_ms 1000) when zero; negative means retry at once
	// (retry_delay_ms 0).
	Delay time.Duration
	// MaxDelay caps every delay. Defaults to 5 minutes.
	MaxDelay time.Duration
	// Jitter spreads each delay uniformly by up to this fraction either
	// way, so that messages that failed together do not come back together.
	// Defaults to 0.2; negative disables it. Keep it below 1/3 for every
	// delay to stay longer than the one before.
	Jitter float64
	// Consumer names the consumer in logs.
	Consumer Consumer
	// Logger logs scheduled retries at warn level. Nil discards.
	Logger *slog.Logger
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	switch {
	case p.Delay == 0:
		p.Delay = DefaultRetryDelay
	case p.Delay < 0:
		p.Delay = 0
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxRetryDelay
	}
	if p.Jitter == 0 {
		p.Jitter = DefaultJitter
	}
	if p.Jitter < 0 {
		p.Jitter = 0
	}
	p.Logger = orDiscard(p.Logger)
	return p
}

// Backoff returns the delay before the retry that follows failed attempt
// number attempt (1 for the first delivery): Delay·2^(attempt-1), jittered,
// capped at MaxDelay.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	return p.withDefaults().backoff(attempt)
}

// backoff is Backoff on a policy whose defaults are filled in (withDefaults
// is not idempotent: it turns a negative Jitter into 0, which means default).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.Delay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if p.Jitter > 0 {
		// Uniform in [1-J, 1+J).
		f := 1 + p.Jitter*(2*rand.Float64()-1)
		d = time.Duration(float64(d) * f)
	}
	return min(max(d, 0), p.MaxDelay)
}

// Middleware returns the retry middleware. On a handler error that is not
// Permanent, on attempt number a <= MaxRetries, it asks the message's
// Delivery to retry after Backoff(a) and returns the error, so the router
// nacks and the backend redelivers later as attempt a+1. Otherwise it
// returns the error untouched for PoisonQueue to dead-letter. A message
// without a Delivery cannot be scheduled: its error passes through.
func (p RetryPolicy) Middleware(h message.HandlerFunc) message.HandlerFunc {
	p = p.withDefaults()
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil || IsPermanent(err) {
			return out, err
		}
		d := pubsub.DeliveryOf(msg)
		if d == nil || d.Attempt > p.MaxRetries {
			return out, err
		}
		delay := p.backoff(d.Attempt)
		d.RetryAfter(delay, err)
		p.Logger.Warn("handler failed, retry scheduled",
			"service", p.Consumer.Service, "handler", p.Consumer.Handler, "queue", d.Queue,
			"message_id", msg.UUID, "attempt", d.Attempt, "max_retries", p.MaxRetries,
			"retry_in", delay, "error", err)
		return out, err
	}
}
