package router

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a context cancelled on SIGINT or SIGTERM (or when
// ctx is), for a service's main to pass to Run. A second signal, after the
// context is cancelled, gets the default behaviour (the process exits), so
// an operator can cut a slow shutdown short.
func SignalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore default signal handling for the next signal
	}()
	return ctx, stop
}

// RunService builds a Router from cfg and runs it until SIGINT, SIGTERM or
// ctx's cancellation, then shuts it down gracefully.
func RunService(ctx context.Context, cfg Config) error {
	r, err := New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := SignalContext(ctx)
	defer stop()
	return r.Run(ctx)
}
