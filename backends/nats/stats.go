package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// queueSnapshot is what Stats and ListPending read about a queue.
type queueSnapshot struct {
	stream jetstream.Stream
	info   *jetstream.StreamInfo
	cons   *jetstream.ConsumerInfo // nil when the consumer does not exist yet
	// due and scheduled are the messages nacked and not yet delivered
	// again, by stream sequence: due ones are deliverable now, scheduled
	// ones wait for their retry time.
	due, scheduled map[uint64]deliveryState
	// early counts the scheduled messages never delivered yet (published
	// delayed): the consumer counts them as pending.
	early int64
}

// snapshot reads what Stats and ListPending need, again while that fails
// transiently (retryRead).
func (d *driver) snapshot(ctx context.Context, queue string) (*queueSnapshot, error) {
	var s *queueSnapshot
	err := d.retryRead(ctx, "read queue "+queue, func(ctx context.Context) error {
		var err error
		s, err = d.readSnapshot(ctx, queue)
		return err
	})
	return s, err
}

func (d *driver) readSnapshot(ctx context.Context, queue string) (*queueSnapshot, error) {
	st, err := d.queueStream(ctx, queue)
	if err != nil {
		return nil, err
	}
	s := &queueSnapshot{stream: st, info: st.CachedInfo(), due: map[uint64]deliveryState{}, scheduled: map[uint64]deliveryState{}}
	cons, err := st.Consumer(ctx, consumerName)
	switch {
	case err == nil:
		s.cons = cons.CachedInfo()
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("queue %s: consumer: %w", queue, err)
	}
	states, err := d.listStates(ctx, queue)
	if err != nil {
		return nil, err
	}
	if err := d.addRecordStates(ctx, queue, s, states); err != nil {
		return nil, err
	}
	now := time.Now()
	for seq, ds := range states {
		if !ds.Waiting || (s.cons != nil && seq <= s.cons.AckFloor.Stream) {
			// In a worker's hands, or left over from a crash after the
			// message was settled.
			continue
		}
		if ds.Deliveries == 0 {
			// Published delayed: scheduled until due, or until delivered
			// (early, then deferred with a state of its own).
			if ds.RetryAt.After(now) && (s.cons == nil || seq > s.cons.Delivered.Stream) {
				s.scheduled[seq] = ds
				s.early++
			}
			continue
		}
		if ds.RetryAt.After(now) {
			s.scheduled[seq] = ds
		} else {
			s.due[seq] = ds
		}
	}
	return s, nil
}

// addRecordStates adds to states the give-back record entries of messages
// that may still wait: not held by this driver, without a state of their
// own (which is newer), above the consumer's ack floor and still in the
// queue (an acked message leaves the stream).
func (d *driver) addRecordStates(ctx context.Context, queue string, s *queueSnapshot, states map[uint64]deliveryState) error {
	recs, err := d.recordStates(ctx, queue)
	if err != nil {
		return err
	}
	for seq, ds := range recs {
		if _, own := states[seq]; own || d.records.isHeld(queue, seq) || (s.cons != nil && seq <= s.cons.AckFloor.Stream) {
			continue
		}
		m, err := s.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("queue %s: read message #%d: %w", queue, seq, err)
		}
		ds.PublishedAt = m.Time
		states[seq] = ds
	}
	return nil
}

// undelivered returns how many messages were never delivered, and the
// first sequence that may hold one.
//
// It counts from the stream, not from the consumer's NumPending: the
// server updates NumPending when the consumer hears of new messages, a
// moment after the publish is acknowledged, so a Stats call right after
// Publish saw fewer messages than were stored. The stream is a work queue
// with one subject, so what it holds is exactly the undelivered messages
// plus the consumer's ack-pending ones (an ack removes the message, and
// a message deleted by an operator leaves the count with it).
func (s *queueSnapshot) undelivered() (n int64, from uint64) {
	if s.cons == nil {
		return int64(s.info.State.Msgs) - s.early, s.info.State.FirstSeq
	}
	n = int64(s.info.State.Msgs) - int64(s.cons.NumAckPending) - s.early
	return max(0, n), s.cons.Delivered.Stream + 1
}

// Stats reads a queue's counts from its stream and consumer:
//   - Pending: messages never delivered (the stream's messages less the
//     consumer's ack-pending ones), plus
//     nacked ones deliverable again and not yet taken;
//   - Scheduled: nacked messages waiting for their retry time;
//   - InFlight: the consumer's ack-pending messages that are neither, that
//     is, messages held by a worker (or pulled ahead by another process;
//     or delivered to a worker that died, until ack_wait runs out);
//   - DeadLetters: the dead-letter stream's messages from this queue.
func (d *driver) Stats(ctx context.Context, queue string) (pubsub.QueueStats, error) {
	s, err := d.snapshot(ctx, queue)
	if err != nil {
		return pubsub.QueueStats{}, err
	}
	undelivered, from := s.undelivered()
	due, scheduled := int64(len(s.due)), int64(len(s.scheduled))
	st := pubsub.QueueStats{
		Queue:     queue,
		Pending:   undelivered + due,
		Scheduled: scheduled,
		Counters: map[string]int64{
			"stream_messages": int64(s.info.State.Msgs),
			"stream_bytes":    int64(s.info.State.Bytes),
			"published":       int64(s.info.State.LastSeq),
		},
	}
	if s.cons != nil {
		st.InFlight = max(0, int64(s.cons.NumAckPending)-due-(scheduled-s.early))
		st.Counters["ack_pending"] = int64(s.cons.NumAckPending)
		st.Counters["delivered"] = int64(s.cons.Delivered.Consumer)
		st.Counters["redelivered"] = int64(s.cons.NumRedelivered)
		st.Counters["ack_floor"] = int64(s.cons.AckFloor.Stream)
		st.Counters["waiting_pulls"] = int64(s.cons.NumWaiting)
	}
	if st.DeadLetters, err = d.deadLetterCount(ctx, queue); err != nil {
		return pubsub.QueueStats{}, err
	}

	var oldest time.Time
	for _, ds := range s.due {
		if !ds.PublishedAt.IsZero() && (oldest.IsZero() || ds.PublishedAt.Before(oldest)) {
			oldest = ds.PublishedAt
		}
	}
	if undelivered > 0 {
		m, err := s.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(d.names.subject(queue)))
		switch {
		case err == nil:
			if oldest.IsZero() || m.Time.Before(oldest) {
				oldest = m.Time
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return pubsub.QueueStats{}, fmt.Errorf("queue %s: oldest message: %w", queue, err)
		}
	}
	if !oldest.IsZero() {
		// At least a nanosecond: a message is pending, so its age is not zero.
		st.OldestPendingAge = max(time.Since(oldest), 1)
	}
	return st, nil
}

// ListPending lists the messages a consumer would receive next, in the
// order JetStream delivers them: nacked messages already due again (by
// sequence), then messages never delivered (by sequence); then those
// waiting for a delayed retry (by retry time, with AvailableAt). Messages
// held by workers are not listed. It reads messages one by one from the
// stream without consuming them.
func (d *driver) ListPending(ctx context.Context, queue string, limit int) ([]pubsub.PendingMessage, error) {
	s, err := d.snapshot(ctx, queue)
	if err != nil {
		return nil, err
	}
	queuePriority := queueInfoOf(s.info).Priority
	subject := d.names.subject(queue)
	var out []pubsub.PendingMessage
	add := func(m *jetstream.RawStreamMsg, attempts int, availableAt time.Time) {
		md := metadataOf(m.Header, nil)
		out = append(out, pubsub.PendingMessage{
			ID:          messageID(m.Header, s.info.Config.Name, m.Sequence),
			Queue:       queue,
			CreatedAt:   m.Time,
			Attempts:    attempts,
			Priority:    priorityOf(md, queuePriority),
			Payload:     m.Data,
			Metadata:    md,
			AvailableAt: availableAt,
		})
	}
	get := func(seq uint64, next bool) (*jetstream.RawStreamMsg, bool, error) {
		var opts []jetstream.GetMsgOpt
		if next {
			opts = append(opts, jetstream.WithGetMsgSubject(subject))
		}
		m, err := s.stream.GetMsg(ctx, seq, opts...)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("queue %s: read message #%d: %w", queue, seq, err)
		}
		return m, true, nil
	}

	for _, seq := range sortedKeys(s.due) {
		if len(out) >= limit {
			return out, nil
		}
		m, ok, err := get(seq, false)
		if err != nil {
			return nil, err
		}
		if ok {
			add(m, s.due[seq].attempts(s.due[seq].Deliveries), time.Time{})
		}
	}
	if n, from := s.undelivered(); n > 0 {
		for seq := from; len(out) < limit; {
			m, ok, err := get(seq, true)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			if _, early := s.scheduled[m.Sequence]; !early {
				add(m, 0, time.Time{})
			}
			seq = m.Sequence + 1
		}
	}
	sched := sortedKeys(s.scheduled)
	slices.SortStableFunc(sched, func(a, b uint64) int { return s.scheduled[a].RetryAt.Compare(s.scheduled[b].RetryAt) })
	for _, seq := range sched {
		if len(out) >= limit {
			break
		}
		m, ok, err := get(seq, false)
		if err != nil {
			return nil, err
		}
		if ok {
			ds := s.scheduled[seq]
			add(m, ds.attempts(ds.Deliveries), ds.RetryAt)
		}
	}
	return out, nil
}

func sortedKeys(m map[uint64]deliveryState) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
