package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// interleaveSlices is how many turns each subject of a lone-publisher
// measurement takes in its publish window.
const interleaveSlices = 20

// interleaved reports whether j is measured by runInterleaved: one
// publisher, one message per call. Its rate is the commit rate, which
// follows the disk's fsync time, and that moves from one minute to the
// next on this machine: measured one after the other, the PostgreSQL
// backend read 0.46-0.64× of the better of its baselines in four runs of
// the same code; taking turns in slices of a twentieth of the window,
// 0.71-0.82× in five (three of them against pgx alone; issue 16).
func interleaved(j *job) bool {
	return j.scenario == ScenarioPublish && j.params.Publishers == 1 && j.params.Batch == 1
}

// runInterleaved measures the interleaved jobs: the subjects on one
// server (by what they need) are open together and publish in turns.
func (r *runner) runInterleaved(ctx context.Context, jobs []*job, results map[string]*Result) {
	var servers []string
	byServer := map[string][]*job{}
	for _, j := range jobs {
		if _, ok := byServer[j.def.needs]; !ok {
			servers = append(servers, j.def.needs)
		}
		byServer[j.def.needs] = append(byServer[j.def.needs], j)
	}
	for _, s := range servers {
		r.runTurns(ctx, byServer[s], results)
		if ctx.Err() != nil {
			return
		}
	}
}

// turn is one subject of an interleaved measurement.
type turn struct {
	j     *job
	inst  *instance
	queue string
	tmpl  []byte
	res   *Result
	seq   int64
}

// runTurns opens every job's subject, warms each up, then lets them
// publish one at a time, each for a slice of the publish window, until
// each had its window.
func (r *runner) runTurns(ctx context.Context, jobs []*job, results map[string]*Result) {
	var turns []*turn
	defer func() {
		for _, t := range turns {
			_ = t.inst.close()
		}
	}()
	for _, j := range jobs {
		res := r.newResult(j)
		t, err := r.openTurn(ctx, j, res)
		if err != nil {
			res.Error = err.Error()
			r.record(j, res, results)
			continue
		}
		turns = append(turns, t)
	}
	for _, t := range turns {
		if _, _, err := t.publishFor(ctx, r.sizes.Warmup.D()); err != nil {
			t.res.Error = err.Error()
		}
	}
	runtime.GC()
	slice := r.sizes.Publish.D() / interleaveSlices
	for range interleaveSlices {
		for _, t := range turns {
			if t.res.Error != "" || ctx.Err() != nil {
				continue
			}
			n, took, err := t.publishFor(ctx, slice)
			if err != nil {
				t.res.Error = err.Error()
			}
			t.res.Messages += n
			t.res.Seconds += took.Seconds()
		}
	}
	for _, t := range turns {
		if t.res.Seconds > 0 {
			t.res.Throughput = float64(t.res.Messages) / t.res.Seconds
		}
		var others []string
		for _, o := range turns {
			if o != t {
				others = append(others, o.j.def.Name)
			}
		}
		if len(others) > 0 {
			t.res.Note = fmt.Sprintf("in %d turns with %s", interleaveSlices, strings.Join(others, ", "))
		}
		r.record(t.j, t.res, results)
	}
}

func (r *runner) openTurn(ctx context.Context, j *job, res *Result) (*turn, error) {
	tmpl, err := payloadTemplate(j.params.PayloadBytes)
	if err != nil {
		return nil, err
	}
	inst, err := j.def.open(ctx, r.env)
	if err != nil {
		return nil, err
	}
	t := &turn{j: j, inst: inst, queue: r.env.queueName("publish"), tmpl: tmpl, res: res}
	if err := inst.prepare(ctx, t.queue); err != nil {
		_ = inst.close()
		return nil, fmt.Errorf("prepare %s: %w", t.queue, err)
	}
	return t, nil
}

// publishFor publishes one message per call, back to back, until d has
// passed (at least one call), and returns how many it published in how
// long.
func (t *turn) publishFor(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	var n int64
	for n == 0 || time.Since(start) < d {
		t.seq++
		if err := t.inst.publish(ctx, t.queue, [][]byte{newPayload(t.tmpl, t.seq)}); err != nil {
			return n, time.Since(start), fmt.Errorf("publish to %s: %w", t.queue, err)
		}
		n++
	}
	return n, time.Since(start), nil
}

// splitInterleaved returns the interleaved jobs and the others, in order.
func splitInterleaved(jobs []*job) (lone, rest []*job) {
	for _, j := range jobs {
		if interleaved(j) {
			lone = append(lone, j)
		} else {
			rest = append(rest, j)
		}
	}
	return lone, rest
}
