package nats

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

// The instance registry and the latest broadcast message of each queue
// live in the key-value bucket <prefix>-REGISTRY (stream KV_<prefix>-REGISTRY),
// one key per instance ("i.<service>.<id>") and per broadcast queue
// ("l.<queue>"), the names base64url-encoded (service names are free
// text; keys allow few characters).

var _ pubsub.InstanceStore = (*driver)(nil)

// instanceRecord is an instance as the bucket keeps it: with its nonce,
// which pubsub.Instance does not marshal.
type instanceRecord struct {
	pubsub.Instance
	Nonce string `json:"nonce"`
}

func keyPart(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func instanceKey(service, id string) string { return "i." + keyPart(service) + "." + keyPart(id) }

func latestKey(queue string) string { return "l." + keyPart(queue) }

// registryConfig is the bucket's configuration, created by Init.
func (d *driver) registryConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      d.names.registry(),
		Description: "QuantumFlow instance registry and latest broadcast messages",
		History:     1,
		Storage:     d.cfg.storage,
		Replicas:    d.cfg.replicas,
	}
}

// ensureRegistry opens the bucket, creating it unless it exists.
func (d *driver) ensureRegistry(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := d.js.KeyValue(ctx, d.names.registry())
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = d.js.CreateKeyValue(ctx, d.registryConfig())
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Another process created it first.
		return d.js.KeyValue(ctx, d.names.registry())
	}
	return kv, err
}

// The registry's calls retry transient failures within publish_timeout,
// each try of a key's read or write bounded by requestTry and a listing by
// attemptTimeout: a bucket whose leader died answers nothing until a new
// one is elected, and a broadcast publish lists the instances first.

// PutInstance records inst unless another live process holds its id:
// a compare-and-set on the record's revision, so two processes
// registering the same id at once cannot both win.
func (d *driver) PutInstance(ctx context.Context, inst pubsub.Instance, liveAfter time.Time) (pubsub.Instance, error) {
	key := instanceKey(inst.Service, inst.ID)
	b, _ := json.Marshal(instanceRecord{Instance: inst, Nonce: inst.Nonce}) // plain fields always marshal
	for {
		var taken *pubsub.Instance
		err := d.retry(ctx, "put instance", requestTry, func(ctx context.Context) error {
			e, err := d.registry.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				_, err = d.registry.Create(ctx, key, b)
				return err
			case err != nil:
				return err
			}
			var old instanceRecord
			if json.Unmarshal(e.Value(), &old) == nil && old.Nonce != inst.Nonce && old.HeartbeatAt.After(liveAfter) {
				old.Instance.Nonce = old.Nonce
				taken = &old.Instance
				return nil
			}
			_, err = d.registry.Update(ctx, key, b, e.Revision())
			return err
		})
		switch {
		case taken != nil:
			return *taken, pubsub.ErrInstanceTaken
		case errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another process wrote it meanwhile (or a try that timed out did): look again
		case err != nil:
			return pubsub.Instance{}, fmt.Errorf("instance %s of %s: %w", inst.ID, inst.Service, err)
		}
		return pubsub.Instance{}, nil
	}
}

// ListInstances returns every record, by service, then id.
func (d *driver) ListInstances(ctx context.Context) ([]pubsub.Instance, error) {
	var keys []string
	err := d.retry(ctx, "list instances", attemptTimeout, func(ctx context.Context) error {
		keys = keys[:0]
		lister, err := d.registry.ListKeysFiltered(ctx, "i.>")
		if err != nil {
			return err
		}
		for key := range lister.Keys() {
			keys = append(keys, key)
		}
		// The lister ends early, and without an error, when ctx does: a
		// list cut short must not pass for the registry.
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("instances: %w", err)
	}
	var out []pubsub.Instance
	for _, key := range keys {
		e, err := d.registryGet(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("instances: %w", err)
		}
		var r instanceRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("instances: record %s: %w", key, err)
		}
		r.Instance.Nonce = r.Nonce
		out = append(out, r.Instance)
	}
	slices.SortFunc(out, func(a, b pubsub.Instance) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// registryGet reads a key of the registry.
func (d *driver) registryGet(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := d.retry(ctx, "registry get", requestTry, func(ctx context.Context) error {
		var err error
		e, err = d.registry.Get(ctx, key)
		return err
	})
	return e, err
}

// DeleteInstance deletes a record.
func (d *driver) DeleteInstance(ctx context.Context, service, id string) error {
	err := d.retry(ctx, "delete instance", requestTry, func(ctx context.Context) error {
		return d.registry.Purge(ctx, instanceKey(service, id))
	})
	if err != nil {
		return fmt.Errorf("instance %s of %s: %w", id, service, err)
	}
	return nil
}

// PutLatest keeps msg as queue's latest broadcast message.
func (d *driver) PutLatest(ctx context.Context, queue string, msg pubsub.LatestMessage) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	err = d.retry(ctx, "put latest", requestTry, func(ctx context.Context) error {
		_, err := d.registry.Put(ctx, latestKey(queue), b)
		return err
	})
	if err != nil {
		return fmt.Errorf("latest message of %s: %w", queue, err)
	}
	return nil
}

// Latest returns queue's latest broadcast message; false when none.
func (d *driver) Latest(ctx context.Context, queue string) (pubsub.LatestMessage, bool, error) {
	e, err := d.registryGet(ctx, latestKey(queue))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return pubsub.LatestMessage{}, false, nil
	}
	if err != nil {
		return pubsub.LatestMessage{}, false, fmt.Errorf("latest message of %s: %w", queue, err)
	}
	var m pubsub.LatestMessage
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return pubsub.LatestMessage{}, false, fmt.Errorf("latest message of %s: %w", queue, err)
	}
	return m, true, nil
}
