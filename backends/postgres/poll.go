package postgres

import (
	"context"
	"time"
)

// poll looks for ready messages every poll interval in the queues whose
// receives wait, with one statement for all of them, and wakes those
// that have some. It is the safety net under notifications (a LISTEN
// connection being re-established, rows written by hand), and how
// messages are found without LISTEN.
//
// Before, each waiting receive claimed at the end of its poll interval:
// a transaction per idle queue and interval. A backend with 600 idle
// subscriptions (200 Singularity instances' three queues) ran 16,908
// statements in 10 s, and the machine was a fifth busy; with the
// poller, 38 statements.
func (d *Driver) poll() {
	t := time.NewTicker(d.cfg.pollInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		queues := d.waitingQueues()
		if len(queues) == 0 {
			continue
		}
		ready, err := d.readyQueues(queues)
		switch {
		case err != nil && !failing:
			d.log.Warn("quantumflow: postgres: polling for ready messages failed; retrying every poll interval",
				"error", err)
		case err == nil && failing:
			d.log.Info("quantumflow: postgres: polling for ready messages works again")
		}
		failing = err != nil
		for _, q := range ready {
			d.wake(q)
		}
	}
}

// waitingQueues lists the queues with a receive waiting for messages.
func (d *Driver) waitingQueues() []string {
	d.queuesMu.Lock()
	defer d.queuesMu.Unlock()
	var out []string
	for name, qs := range d.queues {
		qs.mu.Lock()
		if qs.waiting > 0 {
			out = append(out, name)
		}
		qs.mu.Unlock()
	}
	return out
}

// readyQueues returns which of queues have a message ready now.
func (d *Driver) readyQueues(queues []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	rows, err := d.pool.Query(ctx, d.q.readyQueues, queues)
	if err != nil {
		return nil, d.wrapErr(err)
	}
	var ready []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return nil, d.wrapErr(err)
		}
		ready = append(ready, q)
	}
	rows.Close()
	return ready, d.wrapErr(rows.Err())
}
