package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// deadLetterEntry is a dead letter and where it sits in the dead-letter
// stream.
type deadLetterEntry struct {
	pubsub.DeadLetter
	seq uint64
}

// deadLetterCount returns how many dead letters a queue has.
func (d *driver) deadLetterCount(ctx context.Context, queue string) (int64, error) {
	subject := d.names.dlqSubject(queue)
	var info *jetstream.StreamInfo
	err := d.retryRead(ctx, "count dead letters", func(ctx context.Context) error {
		var err error
		info, err = d.dlqStream.Info(ctx, jetstream.WithSubjectFilter(subject))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("dead letters of %s: %w", queue, err)
	}
	return int64(info.State.Subjects[subject]), nil
}

// scanDeadLetters reads the dead letters q selects, oldest first, with an
// ordered consumer on the dead-letter stream (cheap to create, gone when
// done). Limit is applied by the callers.
func (d *driver) scanDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) ([]deadLetterEntry, error) {
	filter := d.names.dlqSubjects()
	if q.Queue != "" {
		filter = d.names.dlqSubject(q.Queue)
	}
	info, err := d.dlqStream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := d.js.OrderedConsumer(ctx, d.names.dlqStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer func() {
		// Best effort: the server removes it after InactiveThreshold anyway.
		if name := cons.CachedInfo().Name; name != "" {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = d.js.DeleteConsumer(dctx, d.names.dlqStream(), name)
		}
	}()
	var ids map[string]bool
	if len(q.IDs) > 0 {
		ids = make(map[string]bool, len(q.IDs))
		for _, id := range q.IDs {
			ids[id] = true
		}
	}
	var out []deadLetterEntry
	err = readStored(cons, int(total), func(m jetstream.Msg, meta *jetstream.MsgMetadata) bool {
		e := d.decodeDeadLetter(m.Subject(), m.Headers(), m.Data(), meta.Sequence.Stream, meta.Timestamp)
		if ids == nil || ids[e.ID] {
			out = append(out, e)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

// readStoredWait bounds a fetch of messages already stored (readStored):
// the server answers at once unless some were removed meanwhile.
const readStoredWait = 5 * time.Second

// readStored reads about n messages already stored through cons (an
// ordered consumer made for one read), handing each to each while it
// returns true, until the last one (NumPending 0) or n. A fetch asks for
// what is left of n and waits for it: a no-wait fetch gives up after one
// second without a reply (see takeNow), and an empty one ended the
// read, so a loaded server cut an operator's listing short. When fewer
// than n are left (removed meanwhile), the last fetch waits
// readStoredWait.
func readStored(cons jetstream.Consumer, n int, each func(jetstream.Msg, *jetstream.MsgMetadata) bool) error {
	for seen := 0; seen < n; {
		batch, err := cons.Fetch(min(500, n-seen), jetstream.FetchMaxWait(readStoredWait))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			if !each(m, meta) || meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if got == 0 {
			return nil
		}
		seen += got
	}
	return nil
}

func (d *driver) decodeDeadLetter(subject string, h nats.Header, payload []byte, seq uint64, at time.Time) deadLetterEntry {
	var info deadLetterInfo
	_ = json.Unmarshal([]byte(h.Get(hdrDeadLetter)), &info) // a foreign message decodes as empty
	if info.Queue == "" {
		info.Queue = d.names.queueOfDLQSubject(subject)
	}
	return deadLetterEntry{
		seq: seq,
		DeadLetter: pubsub.DeadLetter{
			ID:             messageID(h, d.names.dlqStream(), seq),
			Queue:          info.Queue,
			Payload:        payload,
			Metadata:       info.Metadata,
			Error:          info.Error,
			Attempts:       info.Attempts,
			Handler:        info.Handler,
			Service:        info.Service,
			FirstFailureAt: info.FirstFailureAt,
			LastFailureAt:  info.LastFailureAt,
			CreatedAt:      at,
		},
	}
}

// selectDeadLetters returns the dead letters q selects, newest first, at
// most q.Limit of them when it is positive.
func (d *driver) selectDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) ([]deadLetterEntry, error) {
	var entries []deadLetterEntry
	err := d.retryRead(ctx, "read dead letters", func(ctx context.Context) error {
		var err error
		entries, err = d.scanDeadLetters(ctx, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(entries)
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
	}
	return entries, nil
}

// ListDeadLetters lists dead letters, newest first.
func (d *driver) ListDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) ([]pubsub.DeadLetter, error) {
	entries, err := d.selectDeadLetters(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]pubsub.DeadLetter, len(entries))
	for i, e := range entries {
		out[i] = e.DeadLetter
	}
	return out, nil
}

// RetryDeadLetters publishes the selected dead letters back to their
// queues as new messages (attempts and failure times reset, same id,
// payload and metadata), oldest first, and deletes each from the
// dead-letter stream once its queue has it. A crash in between leaves it
// in both places; retrying it again within the queue stream's duplicate
// window (35s by default, see idWindow) is then deduplicated in the queue.
func (d *driver) RetryDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) (int, error) {
	entries, err := d.selectDeadLetters(ctx, q)
	if err != nil {
		return 0, err
	}
	slices.Reverse(entries)
	moved := 0
	for _, e := range entries {
		qe, err := d.queue(ctx, e.Queue)
		if err != nil {
			return moved, fmt.Errorf("retry dead letter %s: %w", e.ID, err)
		}
		msg := message.NewMessage(e.ID, e.Payload)
		msg.Metadata = e.Metadata
		// A publish id of its own: the original id may still be in the
		// queue's dedup window, and a retry must not be dropped as a
		// duplicate of the failed delivery.
		m := natsMessage(qe.subject, msg, e.ID+"@dlq:"+strconv.FormatUint(e.seq, 10))
		if err := d.publishAll(ctx, []*nats.Msg{m}, nil, nil, nil); err != nil {
			return moved, fmt.Errorf("retry dead letter %s to %s: %w", e.ID, e.Queue, err)
		}
		if err := d.dlqStream.DeleteMsg(ctx, e.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return moved, fmt.Errorf("retry dead letter %s: remove from dead letters: %w", e.ID, err)
		}
		moved++
	}
	return moved, nil
}

// PurgeDeadLetters deletes the selected dead letters.
func (d *driver) PurgeDeadLetters(ctx context.Context, q pubsub.DeadLetterQuery) (int, error) {
	if len(q.IDs) == 0 && q.Limit == 0 {
		// A whole queue, or everything: one purge by subject.
		filter := d.names.dlqSubjects()
		if q.Queue != "" {
			filter = d.names.dlqSubject(q.Queue)
		}
		n, err := d.purgeSubject(ctx, d.names.dlqStream(), filter)
		return n, err
	}
	entries, err := d.selectDeadLetters(ctx, q)
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, e := range entries {
		if err := d.dlqStream.DeleteMsg(ctx, e.seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			return purged, fmt.Errorf("purge dead letter %s: %w", e.ID, err)
		}
		purged++
	}
	return purged, nil
}

// purgeSubject purges a subject of a stream and returns how many messages
// went (the client library's Purge does not say).
func (d *driver) purgeSubject(ctx context.Context, stream, subject string) (int, error) {
	req, _ := json.Marshal(map[string]string{"filter": subject})
	resp, err := d.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+stream, req)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", subject, err)
	}
	var r struct {
		Success bool `json:"success"`
		Purged  int  `json:"purged"`
		Error   *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return 0, fmt.Errorf("purge %s: %w", subject, err)
	}
	if r.Error != nil {
		return 0, fmt.Errorf("purge %s: %s (%d)", subject, r.Error.Description, r.Error.Code)
	}
	return r.Purged, nil
}

// deadLetterMessage builds the dead-letter stream's copy of a message.
func deadLetterMessage(subject, id string, payload []byte, info deadLetterInfo) *nats.Msg {
	b, _ := json.Marshal(info) // plain fields always marshal
	return &nats.Msg{
		Subject: subject,
		Data:    payload,
		Header: nats.Header{
			hdrMsgID:      {id + "@" + info.Queue + ":" + strconv.FormatUint(info.SourceSeq, 10)},
			hdrID:         {id},
			hdrQueue:      {info.Queue},
			hdrDeadLetter: {string(b)},
		},
	}
}
