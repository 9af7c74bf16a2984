package contracts_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/contracts"
	"github.com/quantumflow/quantumflow/topology"
)

const proposal = `{"id":"p1","instance":"s1","change":"tune cache","risk":0.4}`

func TestDecode(t *testing.T) {
	t.Parallel()
	p, err := contracts.Decode[contracts.Proposal](topology.ProposalsQueue, []byte(proposal), nil)
	require.NoError(t, err)
	require.Equal(t, "p1", p.ID)
	require.InDelta(t, 0.4, p.Risk, 1e-9)
	require.Equal(t, 1, p.PayloadVersion(), "no schema_version is version 1")
}

// TestBadInput: every refusal names the queue, the contract and the field.
func TestBadInput(t *testing.T) {
	t.Parallel()
	q := topology.ProposalsQueue
	for _, c := range []struct {
		name, payload string
		md            message.Metadata
		want          string
	}{
		{"MalformedJSON", `{"id": `, nil, `quantumflow.proposal/v1: malformed JSON at byte 7`},
		{"Empty", ``, nil, `empty payload`},
		{"NotAnObject", `[1,2]`, nil, `want a JSON object, got array`},
		{"WrongType", `{"id":"p1","instance":"s1","change":"x","risk":"high"}`, nil, `field "risk": want a number, got string`},
		{"WrongTypeString", `{"id":7,"instance":"s1","change":"x"}`, nil, `field "id": want a string, got number`},
		{"MissingID", `{"instance":"s1","change":"x"}`, nil, `field "id": is required`},
		{"MissingChange", `{"id":"p1","instance":"s1"}`, nil, `field "change": is required`},
		{"OutOfRange", `{"id":"p1","instance":"s1","change":"x","risk":1.5}`, nil, `field "risk": must be between 0 and 1, got 1.5`},
		{"NewerVersion", `{"schema_version":2,"id":"p1","instance":"s1","change":"x"}`, nil, `field "schema_version": version 2 is newer than the newest this consumer knows (1)`},
		{"BadVersion", `{"schema_version":-1,"id":"p1","instance":"s1","change":"x"}`, nil, `field "schema_version": must be 1 or more`},
		{"NewerMetadataVersion", proposal, message.Metadata{contracts.MetadataSchema: "quantumflow.proposal/v3"}, `field "quantumflow_schema": version 3 is newer`},
		{"OtherContract", proposal, message.Metadata{contracts.MetadataSchema: "quantumflow.safety_profile/v1"}, `field "quantumflow_schema": the message is a quantumflow.safety_profile/v1, this queue's contract is quantumflow.proposal`},
		{"BadSchemaMetadata", proposal, message.Metadata{contracts.MetadataSchema: "proposal"}, `field "quantumflow_schema": schema "proposal": want NAME/vVERSION`},
		{"ContentType", proposal, message.Metadata{contracts.MetadataContentType: "text/plain"}, `field "quantumflow_content_type"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := contracts.Decode[contracts.Proposal](q, []byte(c.payload), c.md)
			require.ErrorIs(t, err, contracts.ErrInvalid)
			require.ErrorContains(t, err, c.want)
			require.ErrorContains(t, err, "queue "+q+": ")
			_, ok, err2 := contracts.Check(q+"@s1", []byte(c.payload), c.md)
			require.True(t, ok, "an instance queue has its queue's contract")
			require.ErrorContains(t, err2, c.want)
		})
	}
}

// TestEveryTopologyContract: each queue's contract accepts a full payload
// and names the first required field of an empty one.
func TestEveryTopologyContract(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		topology.ProposalsQueue:      proposal,
		topology.MetricsQueue:        `{"id":"m1","instance":"s1","error_rate":0.1,"latency_ms":12}`,
		topology.PatternsQueue:       `{"id":"pt1","instance":"s1","name":"retry storm","occurrences":3}`,
		topology.ConsensusQueue:      `{"id":"r1","proposal_id":"p1","instance":"s1","decision":"approved","votes_for":3,"votes_against":2}`,
		topology.RollbackQueue:       `{"id":"rb1","instance":"s1","reason":"error rate","error_rate":0.8}`,
		topology.SafetyProfilesQueue: `{"id":"sp1","version":1,"max_risk":0.7}`,
	}
	require.Subset(t, contracts.Queues(), []string{topology.ProposalsQueue, topology.MetricsQueue, topology.PatternsQueue,
		topology.ConsensusQueue, topology.RollbackQueue, topology.SafetyProfilesQueue})
	for q, payload := range good {
		s, ok, err := contracts.Check(q, []byte(payload), nil)
		require.True(t, ok, q)
		require.NoError(t, err, q)
		require.Equal(t, 1, s.Version)
		_, _, err = contracts.Check(q, []byte(`{}`), nil)
		require.ErrorContains(t, err, `field "id": is required`, q)
	}
	_, _, err := contracts.Check(topology.ConsensusQueue, []byte(`{"id":"r1","proposal_id":"p1","instance":"s1","decision":"maybe"}`), nil)
	require.ErrorContains(t, err, `field "decision": must be "approved" or "rejected", got "maybe"`)
	_, ok, err := contracts.Check("no_contract_queue", []byte(`not json`), nil)
	require.False(t, ok)
	require.NoError(t, err)
}

func TestEncode(t *testing.T) {
	t.Parallel()
	b, s, err := contracts.Encode(topology.ProposalsQueue, contracts.Proposal{ID: "p1", Instance: "s1", Change: "x"})
	require.NoError(t, err)
	require.Equal(t, contracts.Schema{Name: "quantumflow.proposal", Version: 1}, s)
	require.Contains(t, string(b), `"schema_version":1`)
	require.NotContains(t, string(b), "proposed_at", "a zero time is left out")

	_, _, err = contracts.Encode(topology.ProposalsQueue, contracts.Proposal{ID: "p1", Instance: "s1"})
	require.ErrorContains(t, err, `queue proposals_for_consensus_queue: quantumflow.proposal/v1: field "change": is required`)

	md := message.Metadata{}
	contracts.SetMetadata(md, s)
	require.Equal(t, "quantumflow.proposal/v1", md.Get(contracts.MetadataSchema))
	require.Equal(t, contracts.ContentTypeJSON, md.Get(contracts.MetadataContentType))
}

// invoiceV1 and invoiceV2 are one user contract at two versions: v2 split
// the amount into cents and currency.
type invoiceV1 struct {
	contracts.Versioned
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
}

func (invoiceV1) Schema() contracts.Schema { return contracts.Schema{Name: "acme.invoice", Version: 1} }
func (i invoiceV1) Validate() error {
	if i.ID == "" {
		return contracts.Field("id", "is required")
	}
	return nil
}

type invoiceV2 struct {
	contracts.Versioned
	ID       string  `json:"id"`
	Amount   float64 `json:"amount,omitempty"` // v1 only
	Cents    int64   `json:"amount_cents"`
	Currency string  `json:"currency"`
}

func (invoiceV2) Schema() contracts.Schema { return contracts.Schema{Name: "acme.invoice", Version: 2} }
func (i invoiceV2) Validate() error {
	if i.Currency == "" {
		return contracts.Field("currency", "is required")
	}
	return nil
}

func (i *invoiceV2) Upgrade(from int) error {
	if from == 1 {
		i.Cents, i.Currency, i.Amount = int64(i.Amount*100), "EUR", 0
	}
	return nil
}

// TestVersionRule: an older known version is accepted (and upgraded), a
// newer one refused.
func TestVersionRule(t *testing.T) {
	t.Parallel()
	old, _, err := contracts.Encode("invoices", invoiceV1{ID: "i1", Amount: 12.5})
	require.NoError(t, err)
	v2, err := contracts.Decode[invoiceV2]("invoices", old, message.Metadata{contracts.MetadataSchema: "acme.invoice/v1"})
	require.NoError(t, err, "an older version is accepted")
	require.Equal(t, 1, v2.PayloadVersion())
	require.EqualValues(t, 1250, v2.Cents)
	require.Equal(t, "EUR", v2.Currency)

	newer, s, err := contracts.Encode("invoices", invoiceV2{ID: "i1", Cents: 5, Currency: "USD"})
	require.NoError(t, err)
	require.Equal(t, 2, s.Version)
	_, err = contracts.Decode[invoiceV1]("invoices", newer, nil)
	require.ErrorContains(t, err, `queue invoices: acme.invoice/v1: field "schema_version": version 2 is newer than the newest this consumer knows (1)`)

	_, _, err = contracts.Encode("invoices", invoiceV1{Versioned: contracts.Versioned{SchemaVersion: 2}, ID: "i1"})
	require.ErrorContains(t, err, "newer", "nothing newer than the code knows is published")
}

func TestRegister(t *testing.T) {
	t.Parallel()
	require.NoError(t, contracts.Register[invoiceV1]("register_test_queue"))
	require.NoError(t, contracts.Register[invoiceV1]("register_test_queue"), "the same contract again")
	err := contracts.Register[invoiceV2]("register_test_queue")
	require.ErrorIs(t, err, contracts.ErrRegistered)
	require.Error(t, contracts.Register[invoiceV1]("bad queue!"))
	s, ok := contracts.Lookup("register_test_queue@s1")
	require.True(t, ok)
	require.Equal(t, "acme.invoice/v1", s.String())
	require.Panics(t, func() { contracts.MustRegister[invoiceV2]("register_test_queue") })
}

func TestParseSchema(t *testing.T) {
	t.Parallel()
	s, err := contracts.ParseSchema("a.b/v12")
	require.NoError(t, err)
	require.Equal(t, contracts.Schema{Name: "a.b", Version: 12}, s)
	for _, bad := range []string{"", "a.b", "/v1", "a.b/v0", "a.b/vx"} {
		_, err := contracts.ParseSchema(bad)
		require.Error(t, err, bad)
	}
}

func TestErrorUnwrapsJSON(t *testing.T) {
	t.Parallel()
	_, err := contracts.Decode[contracts.Proposal]("q", []byte(`{"risk":true}`), nil)
	var typ *json.UnmarshalTypeError
	require.True(t, errors.As(err, &typ))
	var ce *contracts.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, "risk", ce.Field)
	require.Equal(t, "q", ce.Queue)
}
