package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/quantumflow/pubsub"
)

func init() {
	pubsub.Register("postgres", open)
	pubsub.Register("postgresql", open)
}

// Driver is the PostgreSQL backend's pubsub.Driver. Users get it wrapped in
// a *pubsub.Backend; reach it with backend.Driver().(*postgres.Driver) for
// PublishTx, TxPublisher and Pool.
type Driver struct {
	cfg      config
	log      *slog.Logger
	pool     *pgxpool.Pool
	q        queries
	channel  string // NOTIFY channel of the schema
	instance string // host:pid:random, the prefix of every lease owner
	secret   string // the URL's password, scrubbed from errors
	ns       string // the namespace opened with, if any: schema is SCHEMA_NS

	ctx    context.Context // cancelled by Close: stops background work
	cancel context.CancelFunc
	bg     sync.WaitGroup
	// workCtx bounds the database work Close waits for (publishes and
	// claims in flight, the last settlements): cancelled closeGrace after
	// Close starts, so that a database that stopped answering cannot hold
	// Close up for long.
	workCtx    context.Context
	workCancel context.CancelFunc

	pub      *dispatcher
	settler  *settler
	notifier *notifier

	closed atomic.Bool

	knownMu sync.Mutex
	known   map[string]bool // queues known to exist in quantum_flow_queues

	queuesMu sync.Mutex
	queues   map[string]*queueState // queues received from

	consumeStart sync.Once
	consuming    atomic.Bool // startConsuming ran: this backend is a lease holder
	dedupStart   sync.Once

	beatMu   sync.Mutex
	lastBeat time.Time // when the last heartbeat as a lease holder started

	lostClaimsAt atomic.Int64 // unix nanoseconds: a full reap is due then (see lostClaim); 0 none
}

var (
	_ pubsub.Driver           = (*Driver)(nil)
	_ pubsub.LeaseExtender    = (*Driver)(nil)
	_ pubsub.NamespaceDropper = (*Driver)(nil)
	_ pubsub.PayloadLimiter   = (*Driver)(nil)
)

func open(ctx context.Context, u *url.URL, opts pubsub.OpenOptions) (pubsub.Driver, error) {
	cfg, pgURL, err := parseConfig(u)
	if err != nil {
		return nil, err
	}
	if opts.Namespace != "" {
		// The notification channel, quantum_flow_SCHEMA, must stay within
		// PostgreSQL's 63 bytes.
		cfg.schema += "_" + opts.Namespace
		if !schemaRE.MatchString(cfg.schema) {
			return nil, fmt.Errorf("%w: namespace %q: schema %s is longer than 50 characters", pubsub.ErrInvalidArgument, opts.Namespace, cfg.schema)
		}
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
		ns:       opts.Namespace,
		known:    map[string]bool{},
		queues:   map[string]*queueState{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.workCtx, d.workCancel = context.WithCancel(context.Background())
	d.notifier = newNotifier(d)
	d.settler = newSettler(d)
	d.pub = newDispatcher(d)
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

// every runs f every interval until the backend closes, logging what
// failed at debug level: background upkeep, which its next round retries.
func (d *Driver) every(interval time.Duration, what string, f func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if err := f(d.ctx); err != nil && d.ctx.Err() == nil {
			d.log.Debug("quantumflow: postgres: "+what+" failed", "error", d.wrapErr(err))
		}
	}
}

// startConsuming starts what only consumers need: the listener, the
// reaper of expired leases, the poller and the vacuuming of the messages
// table.
func (d *Driver) startConsuming() {
	d.consumeStart.Do(func() {
		d.consuming.Store(true)
		if d.cfg.listen {
			d.goBackground(d.listen)
		}
		d.goBackground(d.reap)
		d.goBackground(d.poll)
		if d.cfg.vacuumThreshold > 0 {
			d.goBackground(d.vacuumLoop)
		}
	})
	d.startDedupExpiry()
}

// MaxPayload is the largest payload a message may have: the URL's
// max_payload, 1 MiB by default.
func (d *Driver) MaxPayload() int { return d.cfg.maxPayload }

// Capabilities returns what the backend can do: everything QuantumFlow
// knows of.
func (d *Driver) Capabilities() pubsub.Capabilities {
	return pubsub.NewCapabilities(pubsub.CapDurable, pubsub.CapDelayedRedelivery, pubsub.CapPriorityOrder,
		pubsub.CapDeadLetters, pubsub.CapTransactionalPublish, pubsub.CapCrossProcess)
}

// Tuning returns how the engine drives ReceiveBatch: claims of up to
// batch messages, claimed messages nobody took within 200ms go back to the
// queue, and claims in order (ReceiveInOrder: a claim starts once the one
// before holds its rows; started together, a later call could reach the
// claim lock first and take the earlier messages, and a call that found
// the queue empty would hold up the results of those started after it).
func (d *Driver) Tuning() pubsub.Tuning {
	return pubsub.Tuning{MaxBatch: d.cfg.batch, ReceivesInFlight: d.claimsInFlight(), ReceiveInOrder: true, PrefetchHold: 200 * time.Millisecond}
}

// claimsInFlight is how many claims of one queue may be on their way at
// once: while one is on its way, another keeps fast subscriptions fed.
// With sync_acks every claim also waits for its commit's flush to disk (it
// carries the acks), so more of them overlap, as many as the raw loop's
// four workers: with two, four subscriptions consumed 70-120k msg/s, with
// four 118-122k (busy 2-core machine). Without sync_acks a claim's commit
// does not wait for the disk, and two keep up.
func (d *Driver) claimsInFlight() int {
	if d.cfg.syncAcks {
		return 4
	}
	return 2
}

// Pool returns the backend's connection pool, for applications that share
// the database (begin the transactions given to PublishTx with it).
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Schema returns the schema holding the backend's tables.
func (d *Driver) Schema() string { return d.cfg.schema }

// DropNamespace drops the schema of the namespace the backend was opened
// with (SCHEMA_NAMESPACE) and everything in it, after writing the
// settlements it holds. The engine has stopped publishing and receiving.
func (d *Driver) DropNamespace(ctx context.Context) error {
	if d.ns == "" {
		return fmt.Errorf("%w: opened without a namespace: nothing to drop", pubsub.ErrInvalidArgument)
	}
	if err := d.settler.flush(ctx); err != nil {
		return d.wrapErr(err)
	}
	_, err := d.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{d.cfg.schema}.Sanitize()+` CASCADE`)
	return d.wrapErr(err)
}

// closeGrace is how long Close lets database work in flight finish.
const closeGrace = 10 * time.Second

// Close writes the settlements it accepted and closes the connections.
// The engine calls it once nothing is published, received or held any
// more.
func (d *Driver) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	grace := time.AfterFunc(closeGrace, d.workCancel)
	defer grace.Stop()
	defer d.workCancel()
	d.pub.close()
	// The settler retries for a while if the database is away.
	var err error
	ctx, cancel := context.WithTimeout(d.workCtx, closeGrace)
	if ferr := d.settler.flushAll(ctx); ferr != nil {
		err = fmt.Errorf("close: acks and nacks not written (their messages will be delivered again): %w", ferr)
	}
	cancel()
	d.cancel()
	d.bg.Wait()
	if d.consuming.Load() {
		ctx, cancel := context.WithTimeout(d.workCtx, closeGrace)
		if herr := d.stopHolding(ctx); herr != nil {
			d.log.Debug("quantumflow: postgres: ending the lease holder heartbeat failed; it runs out by itself", "error", d.wrapErr(herr))
		}
		cancel()
	}
	d.pool.Close()
	return err
}

// checkOpen returns ErrClosed once the backend is closed, for the calls
// that do not come through the engine (PublishTx).
func (d *Driver) checkOpen() error {
	if d.closed.Load() {
		return pubsub.ErrClosed
	}
	return nil
}

// unknownQueues returns the queues this backend has not yet made sure
// quantum_flow_queues lists (see EnsureQueue, markKnown).
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

// EnsureQueue makes sure quantum_flow_queues lists queue (with
// pubsub.DefaultQueueSpec unless declared), once per queue per backend.
func (d *Driver) EnsureQueue(ctx context.Context, queue string) error {
	d.startConsuming() // the engine calls it on Subscribe
	if len(d.unknownQueues([]string{queue})) == 0 {
		return nil
	}
	if _, err := d.pool.Exec(ctx, d.q.ensureQueues, ensureArgs([]string{queue})...); err != nil {
		return d.wrapErr(err)
	}
	d.markKnown([]string{queue})
	return nil
}

// wrapErr says what to do about missing tables and scrubs the password.
// The engine adds the operation, the queue and the sentinel (ErrorCode).
func (d *Driver) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if code, ok := sqlState(err); ok && (code == "42P01" || code == "3F000") {
		err = fmt.Errorf("%w (schema %s; run `quantumflow init`): %w", pubsub.ErrNotInitialized, d.cfg.schema, err)
	}
	return pubsub.RedactError(err, d.secret)
}

// ErrorCode classifies the errors the driver returns.
func (d *Driver) ErrorCode(err error) pubsub.ErrorCode {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return pubsub.CodeCanceled
	case errors.Is(err, pubsub.ErrQueueNotFound):
		return pubsub.CodeNotFound
	case errors.Is(err, pubsub.ErrInvalidArgument):
		return pubsub.CodeInvalidArgument
	case errors.Is(err, pubsub.ErrNotInitialized):
		return pubsub.CodeNotInitialized
	case errors.Is(err, pubsub.ErrClosed), d.closed.Load():
		return pubsub.CodeClosed
	}
	if code, ok := sqlState(err); ok {
		return sqlStateCode(code)
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connect) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err) {
		return pubsub.CodeUnavailable
	}
	return pubsub.CodeUnknown
}

// sqlStateCode classifies a server error by its SQLSTATE.
func sqlStateCode(code string) pubsub.ErrorCode {
	switch {
	case code == "42P01" || code == "3F000": // undefined table, invalid schema name
		return pubsub.CodeNotInitialized
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"),                     // insufficient resources (too many connections)
		strings.HasPrefix(code, "57P"),                    // server shutting down or starting up
		code == "40001", code == "40P01", code == "55P03": // serialization failure, deadlock, lock not available
		return pubsub.CodeUnavailable
	case strings.HasPrefix(code, "22"): // data exception
		return pubsub.CodeInvalidArgument
	}
	return pubsub.CodeUnknown
}

// sqlState returns the SQLSTATE of a server error in err's chain.
func sqlState(err error) (string, bool) {
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		return pgErr.SQLState(), true
	}
	return "", false
}

// isConnectionError reports whether err is about the connection rather
// than a statement the server rejected.
func isConnectionError(err error) bool {
	_, ok := sqlState(err)
	return !ok
}
