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

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/quantumflow/quantumflow/pubsub"
)

func init() {
	pubsub.RegisterLegacy("nats", open)
	pubsub.RegisterLegacy("tls", open)
}

// driver is the NATS JetStream pubsub.Driver.
type driver struct {
	cfg   config
	names names
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	// dlqStream and stateStream are handles on the system streams, set by
	// Init (a handle is a name: using it costs no lookup).
	dlqStream   jetstream.Stream
	stateStream jetstream.Stream
	batches     *batchAcks
	putBacks    putBackCache
	pub         *publisher
	sub         *subscriber
	closed      chan struct{}

	// ops counts operations in progress (publishes, admin calls), so that
	// Close lets them finish before it closes the connection.
	opsMu sync.RWMutex

	queuesMu sync.Mutex
	queues   map[string]*queueEntry

	// fetchers pull for this driver's subscriptions, one per queue.
	fetchersMu sync.Mutex
	fetchers   map[string]*fetcher
}

func open(ctx context.Context, u *url.URL, opts pubsub.OpenOptions) (pubsub.LegacyDriver, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("backend", "nats")
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
	nc, err := nats.Connect(strings.Join(cfg.servers, ","), nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithDefaultTimeout(5*time.Second),
		// A future whose ack never comes (connection lost mid-flight) must
		// fail so that Publish can retry it.
		jetstream.WithPublishAsyncTimeout(5*time.Second),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	d := &driver{
		cfg:    cfg,
		names:  names{prefix: cfg.prefix},
		log:    log,
		nc:     nc,
		js:     js,
		closed: make(chan struct{}),
		queues: map[string]*queueEntry{},

		fetchers: map[string]*fetcher{},
	}
	if d.batches, err = newBatchAcks(nc); err != nil {
		nc.Close()
		return nil, err
	}
	d.pub = &publisher{d: d, closed: make(chan struct{})}
	d.sub = &subscriber{d: d, closing: make(chan struct{})}
	if err := d.Init(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return d, nil
}

func (d *driver) Publisher() message.Publisher   { return d.pub }
func (d *driver) Subscriber() message.Subscriber { return d.sub }

func (d *driver) Capabilities() pubsub.Capabilities {
	caps := pubsub.NewCapabilities(pubsub.CapDelayedRedelivery, pubsub.CapDeadLetters, pubsub.CapCrossProcess)
	if d.cfg.storage == jetstream.FileStorage {
		caps |= pubsub.Capabilities(pubsub.CapDurable)
	}
	return caps
}

// Close stops accepting work, lets publishes and admin calls in progress
// finish, ends every subscription (unsettled messages go back to their
// queue at once), flushes acks and closes the connection.
func (d *driver) Close() error {
	select {
	case <-d.closed:
		return nil
	default:
	}
	close(d.closed)
	d.pub.close()
	d.sub.closeAll()
	// Wait for operations that started before Close.
	d.opsMu.Lock()
	defer d.opsMu.Unlock()
	var err error
	if ferr := d.nc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = fmt.Errorf("flush acks: %w", ferr)
	}
	d.nc.Close()
	return err
}

// begin marks the start of an operation; it fails with ErrClosed once
// Close has started. end must be called when the operation is over.
func (d *driver) begin() error {
	d.opsMu.RLock()
	select {
	case <-d.closed:
		d.opsMu.RUnlock()
		return pubsub.ErrClosed
	default:
		return nil
	}
}

func (d *driver) end() { d.opsMu.RUnlock() }

// isClosed reports whether Close has started.
func (d *driver) isClosed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// closedErr turns err into one wrapping ErrClosed when the backend was
// closed while the operation ran.
func (d *driver) closedErr(err error) error {
	if err != nil && d.isClosed() && !errors.Is(err, pubsub.ErrClosed) {
		return fmt.Errorf("%w: %w", pubsub.ErrClosed, err)
	}
	return err
}
