package postgres_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
)

// A service records a proposal and publishes it for consensus in one
// transaction: the message exists if and only if the row does.
func ExamplePublishTx() {
	ctx := context.Background()
	url, stop := exampleDatabase(ctx) // postgres://app@localhost/singularity in production
	defer stop()
	backend, err := pubsub.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	if err := backend.Init(ctx); err != nil { // or `quantumflow init`
		log.Fatal(err)
	}
	const queue = "proposals_for_consensus_queue"

	pool := backend.Driver().(*postgres.Driver).Pool() // or the application's own pool on the same database
	if _, err := pool.Exec(ctx, `CREATE TABLE proposals (id text PRIMARY KEY, body text)`); err != nil {
		log.Fatal(err)
	}
	for _, p := range []struct {
		id     string
		commit bool
	}{{"p-41", false}, {"p-42", true}} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO proposals (id, body) VALUES ($1, $2)`, p.id, `{"change":"..."}`); err != nil {
			log.Fatal(err)
		}
		msg := message.NewMessage(p.id, []byte(`{"proposal_id":"`+p.id+`"}`))
		if err := postgres.PublishTx(ctx, backend, tx, queue, msg); err != nil {
			log.Fatal(err)
		}
		if p.commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			log.Fatal(err)
		}
	}

	pending, err := backend.ListPending(ctx, queue, 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pending: %d, %s\n", len(pending), pending[0].ID)
	msgs, err := backend.Subscriber().Subscribe(ctx, queue)
	if err != nil {
		log.Fatal(err)
	}
	msg := <-msgs
	fmt.Printf("received %s: %s\n", msg.UUID, msg.Payload)
	msg.Ack()
	// Output:
	// pending: 1, p-42
	// received p-42: {"proposal_id":"p-42"}
}

// Behind PgBouncer in transaction mode: no LISTEN (poll instead) and no
// prepared statements; the tables in their own schema.
func Example_pgBouncer() {
	backend, err := pubsub.Open(context.Background(),
		"postgres://app@pgbouncer:6432/singularity?listen=false&poll_interval=50ms&default_query_exec_mode=exec&schema=quantum_flow")
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
}

// exampleDatabase returns a fresh database on a throwaway server, and
// the function that stops it (examples have no *testing.T for
// pgtest.Database).
func exampleDatabase(ctx context.Context) (string, func()) {
	cluster, err := pgtest.Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	url, err := cluster.NewDatabase(ctx)
	if err != nil {
		log.Fatal(err)
	}
	return url, func() { _ = cluster.Stop() }
}
