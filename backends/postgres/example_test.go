package postgres_test

import (
	"context"
	"log"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/quantumflow/quantumflow/backends/postgres"
	"github.com/quantumflow/quantumflow/pubsub"
)

// A service records a proposal and publishes it for consensus in one
// transaction: the message exists if and only if the row does.
func ExamplePublishTx() {
	ctx := context.Background()
	backend, err := pubsub.Open(ctx, "postgres://app@localhost/singularity?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	pool := backend.Driver().(*postgres.Driver).Pool() // or the application's own pool on the same database
	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO proposals (id, body) VALUES ($1, $2)`, "p-42", `{"change":"..."}`); err != nil {
		log.Fatal(err)
	}
	msg := message.NewMessage(uuid.NewString(), []byte(`{"proposal_id":"p-42"}`))
	if err := postgres.PublishTx(ctx, backend, tx, "proposals_for_consensus_queue", msg); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
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
