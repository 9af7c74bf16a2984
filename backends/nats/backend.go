package nats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

func init() {
	pubsub.Register("nats", open)
	pubsub.Register("tls", open)
}

// driver is the NATS JetStream pubsub.Driver.
type driver struct {
	cfg   config
	names names
	// ns is the namespace the driver was opened in, if any.
	ns  string
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
	// dlqStream, stateStream and registry are handles on the system
	// streams, set by Init (a handle is a name: using it costs no lookup).
	dlqStream   jetstream.Stream
	stateStream jetstream.Stream
	registry    jetstream.KeyValue
	batches     *batchAcks
	givenBack   givenBackCache
	records     records

	queuesMu sync.Mutex
	queues   map[string]*queueEntry

	// removals are the state removals running (see removeStates).
	removals sync.WaitGroup

	paused pausedWatch
}

var (
	_ pubsub.Driver           = (*driver)(nil)
	_ pubsub.LeaseExtender    = (*driver)(nil)
	_ pubsub.NamespaceDropper = (*driver)(nil)
	_ pubsub.PayloadLimiter   = (*driver)(nil)
)

func open(ctx context.Context, u *url.URL, opts pubsub.OpenOptions) (pubsub.Driver, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("backend", "nats")
	nopts, err := connectOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(strings.Join(cfg.servers, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithDefaultTimeout(5*time.Second),
		// A future whose ack never comes (connection lost mid-flight) must
		// fail so that SendBatch can retry it.
		jetstream.WithPublishAsyncTimeout(5*time.Second),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	d := &driver{cfg: cfg, names: namesOf(cfg.prefix, opts.Namespace), ns: opts.Namespace, log: log, nc: nc, js: js, queues: map[string]*queueEntry{}}
	if d.batches, err = newBatchAcks(nc); err != nil {
		nc.Close()
		return nil, err
	}
	if err := d.Init(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return d, nil
}

// connectOptions turns the URL's parameters into nats.go options.
func connectOptions(cfg config, log *slog.Logger) ([]nats.Option, error) {
	nopts := []nats.Option{
		nats.Name(cfg.name),
		// Keep reconnecting for as long as the process runs: a restarted
		// server or a lost cluster node must not need a process restart.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS asynchronous error", "error", err)
		}),
	}
	if cfg.creds != "" {
		nopts = append(nopts, nats.UserCredentials(cfg.creds))
	}
	if cfg.nkeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.nkeySeed)
		if err != nil {
			// The value may be the seed itself put there by mistake: the
			// error must not repeat it, as a path error would.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%w: parameter nkey: cannot read the seed file: %v", pubsub.ErrInvalidURL, err)
		}
		nopts = append(nopts, o)
	}
	if cfg.tlsCA != "" {
		nopts = append(nopts, nats.RootCAs(cfg.tlsCA))
	}
	if cfg.tlsCert != "" {
		nopts = append(nopts, nats.ClientCert(cfg.tlsCert, cfg.tlsKey))
	}
	return nopts, nil
}

func (d *driver) Capabilities() pubsub.Capabilities {
	caps := pubsub.NewCapabilities(pubsub.CapDelayedRedelivery, pubsub.CapDeadLetters, pubsub.CapCrossProcess)
	if d.cfg.storage == jetstream.FileStorage {
		caps |= pubsub.Capabilities(pubsub.CapDurable)
	}
	return caps
}

func (d *driver) Tuning() pubsub.Tuning {
	return pubsub.Tuning{MaxBatch: d.cfg.prefetch, ReceivesInFlight: receivesInFlight, PrefetchHold: prefetchHold}
}

// LeaseInterval is a third of ack_wait, JetStream's lease on a delivered
// message.
func (d *driver) LeaseInterval() time.Duration { return max(d.cfg.ackWait/3, 100*time.Millisecond) }

// Close waits for the state removals under way, flushes acks and closes
// the connection. The engine calls it once no other call is in progress.
func (d *driver) Close() error {
	d.removals.Wait()
	d.paused.stop()
	var err error
	if ferr := d.nc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = fmt.Errorf("flush acks: %w", ferr)
	}
	d.nc.Close()
	return err
}
