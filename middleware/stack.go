package middleware

import (
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/telemetry"
)

// StackConfig configures the whole middleware stack of one consumer.
type StackConfig struct {
	// Consumer names the consumer in dead letters, logs and telemetry.
	Consumer Consumer
	// Retry is the retry policy; its Consumer and Logger default to the
	// ones here.
	Retry RetryPolicy
	// Timeout bounds each attempt; 0 means no bound.
	Timeout time.Duration
	// Telemetry is the bus events go to. Defaults to telemetry.Default.
	Telemetry *telemetry.Bus
	// Logger logs retries, dead letters and panics. Nil discards.
	Logger *slog.Logger
}

// Stack returns the consumer's middleware in the order to add them to a
// Watermill router or handler (first is outermost): Telemetry,
// PoisonQueue, RetryPolicy, Timeout, Recoverer.
func Stack(cfg StackConfig) []message.HandlerMiddleware {
	rp := cfg.Retry
	if rp.Consumer == (Consumer{}) {
		rp.Consumer = cfg.Consumer
	}
	if rp.Logger == nil {
		rp.Logger = cfg.Logger
	}
	return []message.HandlerMiddleware{
		Telemetry(cfg.Consumer, cfg.Telemetry),
		PoisonQueue(cfg.Consumer, cfg.Telemetry, cfg.Logger),
		rp.Middleware,
		Timeout(cfg.Timeout),
		Recoverer(cfg.Consumer, cfg.Logger),
	}
}

// Wrap applies middleware to h, the first one outermost, as a Watermill
// router would.
func Wrap(h message.HandlerFunc, mws ...message.HandlerMiddleware) message.HandlerFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
