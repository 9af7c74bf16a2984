package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/router"
)

// Handlers of the typed consume scenario (Params.Handler).
const (
	// HandlerTyped decodes and validates each payload as a contract
	// (router.Handle) before the no-op handler.
	HandlerTyped = "typed"
	// HandlerUntyped is the no-op router.Handler on the raw message: the
	// baseline.
	HandlerUntyped = "untyped"
)

// benchMessage is the typed consume scenario's contract: the harness's
// payload ({"seq": …, "pad": …}) decoded and validated as router.Handle
// does the topology's contracts.
type benchMessage struct {
	contracts.Versioned
	Seq string `json:"seq"`
	Pad string `json:"pad"`
}

func (benchMessage) Schema() contracts.Schema {
	return contracts.Schema{Name: "quantumflow.bench", Version: 1}
}

func (m benchMessage) Validate() error {
	if len(m.Seq) != seqDigits {
		return contracts.Field("seq", "want %d digits, got %q", seqDigits, m.Seq)
	}
	return nil
}

// errTyped is what the typed consume scenario fails with when a handler
// refused a message.
var errTyped = errors.New("typed consume: a handler refused a message")

// typedConsume is the consume scenario with a router.Handler run on each
// message before its ack: router.Handle's (decode, Validate, Meta, then a
// no-op) or, as the baseline, a no-op Handler on the raw message. Both run
// in the same loop, so the ratio is what typed decoding costs a consumer.
func (r *runner) typedConsume(ctx context.Context, inst *instance, p Params, res *Result) error {
	ws, ok := inst.subject.(*watermillSubject)
	if !ok {
		return fmt.Errorf("typed consume measures the backends only, not %T", inst.subject)
	}
	var h router.Handler = noopHandler
	if p.Handler == HandlerTyped {
		h = router.Handle(func(context.Context, benchMessage, router.Meta) error { return nil })
	}
	var failed atomic.Pointer[error]
	s := *ws
	s.onMessage = func(msg *message.Message) error {
		err := h(msg)
		if err != nil {
			err = fmt.Errorf("%w: %w", errTyped, err)
			failed.CompareAndSwap(nil, &err)
		}
		return err
	}
	err := r.consumeThroughput(ctx, &instance{subject: &s, backend: inst.backend}, p, res)
	if e := failed.Load(); e != nil {
		return *e
	}
	return err
}
