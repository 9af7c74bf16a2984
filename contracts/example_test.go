package contracts_test

import (
	"fmt"

	"github.com/quantumflow/quantumflow/contracts"
)

// Invoice is a contract of one's own: embed Versioned, give a Schema and a
// Validate naming the field at fault, and register it for its queue.
type Invoice struct {
	contracts.Versioned
	ID    string `json:"id"`
	Cents int64  `json:"amount_cents"`
}

func (Invoice) Schema() contracts.Schema { return contracts.Schema{Name: "acme.invoice", Version: 1} }

func (i Invoice) Validate() error {
	switch {
	case i.ID == "":
		return contracts.Field("id", "is required")
	case i.Cents <= 0:
		return contracts.Field("amount_cents", "must be positive, got %d", i.Cents)
	}
	return nil
}

func Example() {
	contracts.MustRegister[Invoice]("invoices_queue")

	payload, schema, err := contracts.Encode("invoices_queue", Invoice{ID: "inv-1", Cents: 1250})
	fmt.Println(string(payload), schema, err)

	for _, p := range []string{
		`{"id":"inv-2","amount_cents":-5}`,
		`{"id":"inv-3","amount_cents":"12.50"}`,
		`{"schema_version":2,"id":"inv-4","amount_cents":100}`,
	} {
		_, _, err := contracts.Check("invoices_queue", []byte(p), nil)
		fmt.Println(err)
	}
	// Output:
	// {"schema_version":1,"id":"inv-1","amount_cents":1250} acme.invoice/v1 <nil>
	// queue invoices_queue: acme.invoice/v1: field "amount_cents": must be positive, got -5
	// queue invoices_queue: acme.invoice/v1: field "amount_cents": want a number, got string
	// queue invoices_queue: acme.invoice/v1: field "schema_version": version 2 is newer than the newest this consumer knows (1): deploy consumers before producers
}
