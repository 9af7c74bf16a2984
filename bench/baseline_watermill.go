package bench

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5/pgxpool"
)

// openWatermillSQL opens stock watermill-sql v4.1.2: its own publisher and
// subscriber. With queue false it is exactly as shipped: the default schema
// (a table per topic, an offsets table, the xmin filter) and the default
// offsets adapter. With queue true it is at its fastest for a work queue:
// the queue schema with DeleteOnAck (batches of 100 claimed and deleted in
// one transaction; without DeleteOnAck acked rows stay in the table and
// every poll scans them). Both keep the defaults otherwise: 1 s poll
// interval, repeatable read. Each subscription holds a pooled connection,
// so the pool grows with the worker count.
func openWatermillSQL(ctx context.Context, dbURL string, queue bool) (subject, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("watermill-sql baseline: %w", err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("watermill-sql baseline: %w", err)
	}
	db := wmsql.BeginnerFromPgx(pool)
	var (
		schema  wmsql.SchemaAdapter  = wmsql.DefaultPostgreSQLSchema{}
		offsets wmsql.OffsetsAdapter = wmsql.DefaultPostgreSQLOffsetsAdapter{}
	)
	if queue {
		schema, offsets = wmsql.PostgreSQLQueueSchema{}, wmsql.PostgreSQLQueueOffsetsAdapter{DeleteOnAck: true}
	}
	pub, err := wmsql.NewPublisher(db, wmsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, watermill.NopLogger{})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("watermill-sql baseline: %w", err)
	}
	sub, err := wmsql.NewSubscriber(db, wmsql.SubscriberConfig{
		SchemaAdapter:    schema,
		OffsetsAdapter:   offsets,
		InitializeSchema: true,
	}, watermill.NopLogger{})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("watermill-sql baseline: %w", err)
	}
	return &watermillSubject{
		pub: pub,
		sub: sub,
		declare: func(ctx context.Context, queue string) error {
			// The subscriber creates the table on Subscribe; the
			// publisher on its first Publish. Create it up front so that
			// neither measurement pays for it.
			return sub.SubscribeInitialize(queue)
		},
		closeFn: func() error {
			err := sub.Close()
			_ = pub.Close()
			pool.Close()
			return err
		},
	}, nil
}

// openGoChannel opens Watermill's in-process GoChannel. It is a fan-out bus,
// not a queue: every subscription receives every message, so it is only
// ever measured with one subscription. Persistent so that a preloaded
// backlog is delivered to the subscription that comes later.
func openGoChannel() subject {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024, Persistent: true}, watermill.NopLogger{})
	return &watermillSubject{pub: gc, sub: gc, closeFn: gc.Close}
}
