package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// The audit log is the stream <prefix>-AUDIT, one message per entry (its
// JSON) on the subject <prefix>.audit, kept until an operator limits the
// stream (nats stream edit QF-AUDIT --max-age 90d).

var _ pubsub.AuditStore = (*driver)(nil)

// auditConfig is the audit stream's configuration, created by Init.
func (d *driver) auditConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        d.names.auditStream(),
		Description: "QuantumFlow audit log: every operator mutation, who made it and how many messages it changed",
		Subjects:    []string{d.names.auditSubject()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     d.cfg.storage,
		Replicas:    d.cfg.replicas,
		// The message id of each entry makes a publish retried after a
		// lost answer store it once.
		Duplicates: 2 * time.Minute,
	}
}

// ensureAudit creates the audit stream unless it exists, within
// publish_timeout.
func (d *driver) ensureAudit(ctx context.Context) error {
	cfg := d.auditConfig()
	if err := d.retry(ctx, "init", attemptTimeout, func(ctx context.Context) error {
		_, err := d.ensureStream(ctx, cfg)
		return err
	}); err != nil {
		return fmt.Errorf("init: stream %s: %w", cfg.Name, err)
	}
	return nil
}

// AppendAudit publishes e to the audit stream. A backend initialised
// before the audit log existed gets its stream on the first entry.
func (d *driver) AppendAudit(ctx context.Context, e pubsub.AuditEntry) error {
	b, _ := json.Marshal(e) // plain fields always marshal
	id := uuid.NewString()
	publish := func() error {
		return d.retry(ctx, "append audit", requestTry, func(ctx context.Context) error {
			_, err := d.js.Publish(ctx, d.names.auditSubject(), b, jetstream.WithMsgID(id), jetstream.WithExpectStream(d.names.auditStream()))
			return err
		})
	}
	err := publish()
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		if err := d.ensureAudit(ctx); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		err = publish()
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ListAudit reads the last limit entries with an ordered consumer from
// the stream's last sequences, and returns them newest first. No stream
// (not initialised since the audit log exists) is an empty log.
func (d *driver) ListAudit(ctx context.Context, limit int) ([]pubsub.AuditEntry, error) {
	var out []pubsub.AuditEntry
	err := d.retryRead(ctx, "list audit", func(ctx context.Context) error {
		var err error
		out, err = d.readAudit(ctx, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// readAudit reads the last limit entries, oldest first.
func (d *driver) readAudit(ctx context.Context, limit int) ([]pubsub.AuditEntry, error) {
	st, err := d.js.Stream(ctx, d.names.auditStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	start := state.FirstSeq
	if state.LastSeq >= uint64(limit) {
		start = max(start, state.LastSeq-uint64(limit)+1)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if name := cons.CachedInfo().Name; name != "" {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = d.js.DeleteConsumer(dctx, d.names.auditStream(), name)
		}
	}()
	var out []pubsub.AuditEntry
	err = readStored(cons, int(state.LastSeq-start+1), func(m jetstream.Msg, meta *jetstream.MsgMetadata) bool {
		var e pubsub.AuditEntry
		if json.Unmarshal(m.Data(), &e) == nil {
			out = append(out, e)
		}
		return len(out) < limit && meta.Sequence.Stream < state.LastSeq
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
