package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// DropNamespace deletes everything the namespace the driver was opened in
// holds: its queue streams, its dead-letter, delivery-state and audit streams and
// its registry bucket (see names for how they are told apart from every
// other namespace's). The engine has stopped publishing and receiving; the
// state removals under way finish first. A cluster's transient conditions
// are retried within publish_timeout; what is already gone is skipped, so
// a drop that failed half way can be run again.
func (d *driver) DropNamespace(ctx context.Context) error {
	if d.ns == "" {
		return fmt.Errorf("%w: opened without a namespace: nothing to drop", pubsub.ErrInvalidArgument)
	}
	d.removals.Wait()
	err := d.retry(ctx, "drop namespace", attemptTimeout, func(ctx context.Context) error {
		streams, err := d.namespaceStreams(ctx)
		if err != nil {
			return err
		}
		for _, name := range streams {
			if err := d.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("delete stream %s: %w", name, err)
			}
		}
		if err := d.js.DeleteKeyValue(ctx, d.names.registry()); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("delete bucket %s: %w", d.names.registry(), err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop namespace %s: %w", d.ns, err)
	}
	d.queuesMu.Lock()
	clear(d.queues)
	d.queuesMu.Unlock()
	return nil
}

// namespaceStreams lists the streams of the driver's namespace: those
// with a subject under its prefix, named as this backend names them (a
// stream someone else made on those subjects is left alone).
func (d *driver) namespaceStreams(ctx context.Context) ([]string, error) {
	lister := d.js.StreamNames(ctx, jetstream.WithStreamListSubject(d.names.prefix+".>"))
	var out []string
	for name := range lister.Name() {
		if name == d.names.dlqStream() || name == d.names.stateStream() || name == d.names.auditStream() || strings.HasPrefix(name, d.names.streamPrefix()) {
			out = append(out, name)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return out, nil
}
