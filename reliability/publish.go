package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/pubsub"
)

// load is what a scenario publishes: messages [From, To) in batches of
// Batch, queue after queue, by Workers goroutines, paced at Rate messages
// a second (0: as fast as they go). Bad(i) makes message i malformed.
type load struct {
	From, To int
	Batch    int
	Workers  int
	Rate     float64
	Bad      func(i int) bool
}

// tryTimeout bounds one publish call; a call still blocked after it
// counts as a publish error and is tried again.
const tryTimeout = 60 * time.Second

// malformed returns the i-th malformed payload, in turn one of the
// shapes a broken producer sends.
func malformed(i int) []byte {
	shapes := []string{
		"not json %d",
		`{"n": %d, "sent": `,
		"\x00\xff\xfe binary %d",
		`["an", "array", %d]`,
		`{"n": "%d", "sent": "yesterday"}`,
	}
	return fmt.Appendf(nil, shapes[i%len(shapes)], i)
}

// publish publishes l, retrying each failed batch with the same ids until
// it is acknowledged or ctx ends.
func (f *flow) publish(ctx context.Context, l load) error {
	batch, workers := max(l.Batch, 1), max(l.Workers, 1)
	start := time.Now()
	var next atomic.Int64
	next.Store(int64(l.From))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= l.To {
					return
				}
				to := min(from+batch, l.To)
				if err := f.publishBatch(ctx, l, start, from, to); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// publishBatch publishes messages [from, to) to one queue.
func (f *flow) publishBatch(ctx context.Context, l load, start time.Time, from, to int) error {
	intended := start
	if l.Rate > 0 {
		intended = start.Add(time.Duration(float64(from-l.From) / l.Rate * float64(time.Second)))
		if err := sleep(ctx, time.Until(intended)); err != nil {
			return err
		}
	}
	q := (from / max(l.Batch, 1)) % len(f.pubs)
	for {
		msgs := make([]*message.Message, 0, to-from)
		for i := from; i < to; i++ {
			body, _ := json.Marshal(payload{N: i, Sent: intended.UnixNano()})
			if l.Bad != nil && l.Bad(i) {
				body = malformed(i)
			}
			msgs = append(msgs, message.NewMessage(f.id(i), body))
		}
		tryCtx, cancel := context.WithTimeout(ctx, tryTimeout)
		began := time.Now()
		err := f.pubs[q].PublishMessages(tryCtx, msgs...)
		cancel()
		f.t.noteCall(time.Since(began))
		if err == nil {
			f.t.mu.Lock()
			for i := from; i < to; i++ {
				f.t.published[i] = publishedGood
				if l.Bad != nil && l.Bad(i) {
					f.t.published[i] = publishedBad
				}
			}
			f.t.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.t.pubErrors.Add(1)
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// accounting is where the flow's messages are.
type accounting struct {
	published, publishedBad int64
	consumed, duplicated    int64
	deadLettered            int64
	// badDead counts malformed messages in the dead letters with the
	// malformed reason; goodDead good messages in the dead letters.
	badDead, goodDead int64
	// missingGood and missingBad count published messages neither
	// consumed nor dead-lettered.
	missingGood, missingBad int64
}

func (a accounting) lost() int64 { return a.missingGood + a.missingBad }

// account reads the dead letters and tallies every published message.
func (f *flow) account(ctx context.Context) (accounting, error) {
	dead := map[int]string{}
	for _, q := range f.queues {
		dls, err := f.backend.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Queue: q, Limit: 10_000_000})
		if err != nil {
			return accounting{}, fmt.Errorf("dead letters of %s: %w", q, err)
		}
		for _, d := range dls {
			if n := f.indexOf(d.ID); n >= 0 {
				dead[n] = d.Error
			}
		}
	}
	var a accounting
	f.t.mu.Lock()
	defer f.t.mu.Unlock()
	a.deadLettered = int64(len(dead))
	for i, st := range f.t.published {
		seen := int64(f.t.seen[i])
		if seen > 0 {
			a.consumed++
			a.duplicated += seen - 1
		}
		reason, isDead := dead[i]
		switch st {
		case publishedGood:
			a.published++
			if isDead {
				a.goodDead++
			} else if seen == 0 {
				a.missingGood++
			}
		case publishedBad:
			a.published++
			a.publishedBad++
			switch {
			case isDead && strings.Contains(reason, errMalformed.Error()):
				a.badDead++
			case !isDead:
				a.missingBad++
			}
		}
	}
	return a, nil
}

// drain waits up to timeout until every published message is consumed or
// dead-lettered, then writes the accounting into the result.
func (f *flow) drain(ctx context.Context, timeout time.Duration) (accounting, error) {
	deadline := time.Now().Add(timeout)
	for {
		a, err := f.account(ctx)
		if err == nil && a.lost() == 0 || time.Now().After(deadline) {
			if err == nil {
				f.record(a)
			}
			return a, err
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return a, err
		}
	}
}

// record writes a into the result and fails it on loss or a good message
// dead-lettered.
func (f *flow) record(a accounting) {
	res := f.r.res
	res.Published, res.Consumed, res.DeadLettered = a.published, a.consumed, a.deadLettered
	res.Duplicated, res.Lost = a.duplicated, a.lost()
	res.PublishErrors = f.t.pubErrors.Load()
	if a.lost() > 0 {
		res.fail("%d published message(s) neither consumed nor dead-lettered", a.lost())
	}
	if a.goodDead > 0 {
		res.fail("%d good message(s) dead-lettered", a.goodDead)
	}
	if a.publishedBad != a.badDead {
		res.fail("%d of %d malformed message(s) in the dead letters with the reason %q", a.badDead, a.publishedBad, errMalformed.Error())
	}
	if d := time.Duration(f.t.slowestPublish.Load()); d > 0 {
		res.figure("slowest publish call", "%s", d.Round(time.Millisecond))
	}
}

// noteCall records a publish call's duration if it is the slowest yet.
func (t *tally) noteCall(d time.Duration) {
	for {
		old := t.slowestPublish.Load()
		if int64(d) <= old || t.slowestPublish.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}
