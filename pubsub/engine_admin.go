package pubsub

import (
	"context"
	"fmt"
	"slices"
)

// engineAdmin is the Admin of an engine's driver: it checks arguments
// once for every backend, fails with ErrClosed once the backend is closed,
// gives back what the engine received ahead before reading a queue, and
// gives errors the engine's shape.
type engineAdmin struct{ e *engine }

func (a engineAdmin) check(op, queue string) error {
	if a.e.isClosed() {
		if queue != "" {
			return fmt.Errorf("%s queue %s: %w", op, queue, ErrClosed)
		}
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return nil
}

func (a engineAdmin) Init(ctx context.Context) error {
	if err := a.check("init", ""); err != nil {
		return err
	}
	return a.e.wrap("init", "", a.e.d.Init(ctx))
}

func (a engineAdmin) DeclareQueue(ctx context.Context, spec QueueSpec) error {
	if err := ValidateQueueName(spec.Name); err != nil {
		return err
	}
	if spec.MaxRetries < 0 {
		return fmt.Errorf("queue %s: max_retries must be >= 0, got %d", spec.Name, spec.MaxRetries)
	}
	if spec.RetryDelay < 0 {
		return fmt.Errorf("queue %s: retry delay must be >= 0, got %s", spec.Name, spec.RetryDelay)
	}
	if spec.DedupWindow == 0 {
		spec.DedupWindow = DefaultDedupWindow
	}
	if err := ValidateDedupWindow(spec.DedupWindow); err != nil {
		return fmt.Errorf("queue %s: %w: %w", spec.Name, ErrInvalidArgument, err)
	}
	if err := a.check("declare", spec.Name); err != nil {
		return err
	}
	return a.e.wrap("declare", spec.Name, a.e.d.DeclareQueue(ctx, spec))
}

func (a engineAdmin) ListQueues(ctx context.Context) ([]QueueInfo, error) {
	if err := a.check("list queues", ""); err != nil {
		return nil, err
	}
	qs, err := a.e.d.ListQueues(ctx)
	return qs, a.e.wrap("list queues", "", err)
}

func (a engineAdmin) Stats(ctx context.Context, queue string) (QueueStats, error) {
	if err := ValidateQueueName(queue); err != nil {
		return QueueStats{}, err
	}
	if err := a.check("stats of", queue); err != nil {
		return QueueStats{}, err
	}
	var st QueueStats
	err := a.e.giveBackBuffered(ctx, queue, func() (err error) {
		st, err = a.e.d.Stats(ctx, queue)
		return err
	})
	if qp, ok := a.e.d.(QueuePauser); ok && err == nil {
		var paused []string
		paused, err = qp.PausedQueues(ctx)
		base, _ := SplitInstanceQueue(queue)
		st.Paused = slices.Contains(paused, queue) || slices.Contains(paused, base)
	}
	return st, a.e.wrap("stats of", queue, err)
}

func (a engineAdmin) ListPending(ctx context.Context, queue string, limit int) ([]PendingMessage, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	if err := a.check("list pending of", queue); err != nil {
		return nil, err
	}
	var ms []PendingMessage
	err := a.e.giveBackBuffered(ctx, queue, func() (err error) {
		ms, err = a.e.d.ListPending(ctx, queue, limit)
		return err
	})
	return ms, a.e.wrap("list pending of", queue, err)
}

// checkDeadLetterQuery validates a dead-letter query.
func checkDeadLetterQuery(q DeadLetterQuery) error {
	if q.Queue != "" {
		if err := ValidateQueueName(q.Queue); err != nil {
			return err
		}
	}
	if q.Limit < 0 {
		return fmt.Errorf("dead letters: limit must be >= 0, got %d", q.Limit)
	}
	for _, id := range q.IDs {
		if err := ValidateMessageID(id); err != nil {
			return fmt.Errorf("dead letters: %w", err)
		}
	}
	return nil
}

func (a engineAdmin) ListDeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error) {
	if err := checkDeadLetterQuery(q); err != nil {
		return nil, err
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	if err := a.check("list dead letters", ""); err != nil {
		return nil, err
	}
	ds, err := a.e.d.ListDeadLetters(ctx, q)
	return ds, a.e.wrap("list dead letters", "", err)
}

func (a engineAdmin) RetryDeadLetters(ctx context.Context, q DeadLetterQuery) (int, error) {
	if err := checkDeadLetterQuery(q); err != nil {
		return 0, err
	}
	if err := a.check("retry dead letters", ""); err != nil {
		return 0, err
	}
	n, err := a.e.d.RetryDeadLetters(ctx, q)
	return n, a.e.wrap("retry dead letters", "", err)
}

func (a engineAdmin) PurgeDeadLetters(ctx context.Context, q DeadLetterQuery) (int, error) {
	if err := checkDeadLetterQuery(q); err != nil {
		return 0, err
	}
	if err := a.check("purge dead letters", ""); err != nil {
		return 0, err
	}
	n, err := a.e.d.PurgeDeadLetters(ctx, q)
	return n, a.e.wrap("purge dead letters", "", err)
}
