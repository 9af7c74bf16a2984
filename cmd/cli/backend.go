package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// loadOptions are the topology load options the global flags describe.
// --url is the messaging backend (messaging_url), which both services
// must share; --instance is instance_id; --instance-ttl and
// --broadcast-retention are instance_ttl and broadcast_retention.
func (a *app) loadOptions() topology.LoadOptions {
	ov := topology.Overrides{Profile: a.profile}
	if a.urlSet {
		ov.MessagingURL = a.url
	}
	if a.instanceSet {
		ov.InstanceID = a.instance
	}
	if a.instanceTTLSet {
		ov.InstanceTTL = &a.instanceTTL
	}
	if a.broadcastRetentionSet {
		ov.BroadcastRetention = &a.broadcastRetention
	}
	return topology.LoadOptions{Service: a.service, Path: a.configPath, LookupEnv: a.env.LookupEnv, Overrides: ov}
}

// loadConfig loads the effective configuration of --service. Any error is
// a configuration error (exit 2).
func (a *app) loadConfig() (topology.ServiceConfig, error) {
	return a.loadConfigWith(a.loadOptions())
}

func (a *app) loadConfigWith(opts topology.LoadOptions) (topology.ServiceConfig, error) {
	cfg, err := topology.Load(opts)
	if err != nil {
		return cfg, usageError{err}
	}
	a.noteSecret(cfg.DatabaseURL)
	a.noteSecret(cfg.MessagingURL)
	return cfg, nil
}

// open loads the configuration and opens its backend. The caller closes
// the backend.
func (a *app) open(ctx context.Context) (topology.ServiceConfig, *pubsub.Backend, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return cfg, nil, err
	}
	b, err := a.openBackend(ctx, cfg)
	return cfg, b, err
}

// openBackend opens cfg's messaging backend, BackendURL: messaging_url,
// else database_url.
func (a *app) openBackend(ctx context.Context, cfg topology.ServiceConfig) (*pubsub.Backend, error) {
	return pubsub.Open(ctx, cfg.BackendURL(), pubsub.WithLogger(a.logger()))
}

// checkQueue accepts a queue of the topology or one the backend knows, and
// otherwise fails with a usage error listing the known queues, so that a
// typo does not quietly create a new queue.
func checkQueue(ctx context.Context, b *pubsub.Backend, cfg topology.ServiceConfig, queue string) error {
	if err := pubsub.ValidateQueueName(queue); err != nil {
		return err
	}
	if _, ok := cfg.Spec(queue); ok {
		return nil
	}
	infos, err := b.ListQueues(ctx)
	if err != nil && !errors.Is(err, pubsub.ErrNotInitialized) {
		return err
	}
	known := make([]string, 0, len(infos)+6)
	for _, q := range topology.Queues() {
		known = append(known, q.Name)
	}
	for _, qi := range infos {
		if qi.Name == queue {
			return nil
		}
		if !slices.Contains(known, qi.Name) {
			known = append(known, qi.Name)
		}
	}
	return fmt.Errorf("%w: %q (known: %s)", pubsub.ErrQueueNotFound, queue, strings.Join(known, ", "))
}
