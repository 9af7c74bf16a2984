package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/quantumflow/pubsub"
)

func init() {
	pubsub.RegisterLegacy("postgres", open)
	pubsub.RegisterLegacy("postgresql", open)
}

// Driver is the PostgreSQL backend. Users get it wrapped in a
// *pubsub.Backend; reach it with backend.Driver().(*postgres.Driver) for
// PublishTx and TxPublisher.
type Driver struct {
	cfg      config
	log      *slog.Logger
	pool     *pgxpool.Pool
	q        queries
	channel  string // NOTIFY channel of the schema
	instance string // host:pid:random, the prefix of every lease owner
	secret   string // the URL's password, scrubbed from errors

	ctx    context.Context // cancelled by Close: stops background work
	cancel context.CancelFunc
	bg     sync.WaitGroup
	// workCtx bounds the database work Close waits for (publishes and
	// claims in flight, the last settles): cancelled closeGrace after
	// Close starts, so that a database that stopped answering cannot hold
	// Close up for long.
	workCtx    context.Context
	workCancel context.CancelFunc

	pub      *publisher
	sub      *subscriber
	settler  *settler
	notifier *notifier
	leases   *leases

	closed atomic.Bool

	knownMu sync.Mutex
	known   map[string]bool // queues known to exist in quantum_flow_queues

	listenStart sync.Once
	leaseStart  sync.Once
}

var (
	_ pubsub.LegacyDriver = (*Driver)(nil)
)

func open(ctx context.Context, u *url.URL, opts pubsub.OpenOptions) (pubsub.LegacyDriver, error) {
	cfg, pgURL, err := parseConfig(u)
	if err != nil {
		return nil, err
	}
	secret, _ := u.User.Password()
	if secret == "" {
		secret = u.Query().Get("password")
	}
	poolCfg, err := pgxpool.ParseConfig(pgURL.String())
	if err != nil {
		// %v: pgconn's ParseConfigError keeps the connection string.
		return nil, fmt.Errorf("%w: %v", pubsub.ErrInvalidURL, pubsub.RedactError(err, secret))
	}
	if !u.Query().Has("pool_max_conns") {
		poolCfg.MaxConns = cfg.maxConns
	}
	if _, ok := poolCfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "quantumflow"
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %v", pubsub.RedactError(err, secret))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, pubsub.RedactError(fmt.Errorf("connect: %w", err), secret)
	}
	d := &Driver{
		cfg:      cfg,
		log:      opts.Logger,
		pool:     pool,
		q:        newQueries(cfg.schema),
		channel:  "quantum_flow_" + cfg.schema,
		instance: instanceID(),
		secret:   secret,
		known:    map[string]bool{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.workCtx, d.workCancel = context.WithCancel(context.Background())
	d.notifier = newNotifier(d)
	d.settler = newSettler(d)
	d.leases = newLeases(d)
	d.pub = newPublisher(d)
	d.sub = newSubscriber(d)
	d.goBackground(d.settler.run)
	return d, nil
}

// instanceID names this backend instance in lease owners (locked_by), so
// that operators can tell which process holds a message.
func instanceID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (d *Driver) goBackground(f func()) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		f()
	}()
}

// startConsuming starts what only consumers need: the listener and the
// lease keeper.
func (d *Driver) startConsuming() {
	if d.cfg.listen {
		d.listenStart.Do(func() { d.goBackground(d.listen) })
	}
	d.leaseStart.Do(func() { d.goBackground(d.leases.run) })
}

// Publisher returns the backend's publisher.
func (d *Driver) Publisher() message.Publisher { return d.pub }

// Subscriber returns the backend's subscriber.
func (d *Driver) Subscriber() message.Subscriber { return d.sub }

// Capabilities returns what the backend can do: everything QuantumFlow
// knows of.
func (d *Driver) Capabilities() pubsub.Capabilities {
	return pubsub.NewCapabilities(pubsub.CapDurable, pubsub.CapDelayedRedelivery, pubsub.CapPriorityOrder,
		pubsub.CapDeadLetters, pubsub.CapTransactionalPublish, pubsub.CapCrossProcess)
}

// Pool returns the backend's connection pool, for applications that share
// the database (begin the transactions given to PublishTx with it).
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Schema returns the schema holding the backend's tables.
func (d *Driver) Schema() string { return d.cfg.schema }

// closeGrace is how long Close lets database work in flight finish.
const closeGrace = 10 * time.Second

// Close stops publishing and consuming, returns every message a consumer
// held unacknowledged to its queue, writes pending acknowledgements and
// closes the connections. Publishes in progress finish first.
func (d *Driver) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	grace := time.AfterFunc(closeGrace, d.workCancel)
	defer grace.Stop()
	defer d.workCancel()
	var errs []error
	errs = append(errs, d.pub.close())
	errs = append(errs, d.sub.close())
	// Everything settled or released by now is written before the pool
	// goes; the settler retries for a while if the database is away.
	ctx, cancel := context.WithTimeout(d.workCtx, 10*time.Second)
	if err := d.settler.flushAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close: acks and nacks not written (their messages will be delivered again): %w", err))
	}
	cancel()
	d.cancel()
	d.bg.Wait()
	d.pool.Close()
	return errors.Join(errs...)
}

// checkOpen returns ErrClosed once the backend is closed.
func (d *Driver) checkOpen() error {
	if d.closed.Load() {
		return pubsub.ErrClosed
	}
	return nil
}

// unknownQueues returns the queues this backend has not yet made sure
// quantum_flow_queues lists (see ensureQueue, markKnown).
func (d *Driver) unknownQueues(queues []string) []string {
	d.knownMu.Lock()
	defer d.knownMu.Unlock()
	var out []string
	for _, q := range queues {
		if !d.known[q] {
			out = append(out, q)
		}
	}
	return out
}

// markKnown records queues as listed in quantum_flow_queues.
func (d *Driver) markKnown(queues []string) {
	d.knownMu.Lock()
	defer d.knownMu.Unlock()
	for _, q := range queues {
		d.known[q] = true
	}
}

// ensureQueue makes sure quantum_flow_queues lists queue, once per queue
// per backend: publishing or subscribing to a queue declares it with the
// defaults.
func (d *Driver) ensureQueue(ctx context.Context, queue string) error {
	if len(d.unknownQueues([]string{queue})) == 0 {
		return nil
	}
	if _, err := d.pool.Exec(ctx, d.q.ensureQueues, ensureArgs([]string{queue})...); err != nil {
		return d.wrapErr(queue, err)
	}
	d.markKnown([]string{queue})
	return nil
}

// wrapErr maps a database error to the pubsub sentinels, names the queue
// and scrubs the password.
func (d *Driver) wrapErr(queue string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		err = fmt.Errorf("%w (schema %s; run `quantumflow init`): %w", pubsub.ErrNotInitialized, d.cfg.schema, err)
	} else if d.closed.Load() && !errors.Is(err, pubsub.ErrClosed) {
		err = fmt.Errorf("%w: %w", pubsub.ErrClosed, err)
	}
	if queue != "" {
		err = fmt.Errorf("queue %s: %w", queue, err)
	}
	return pubsub.RedactError(err, d.secret)
}
