package httpapi_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/internal/testutil"
	"github.com/quantumflow/quantumflow/monitoring/httpapi"
)

// hostileRequest is one row of the HTTP API's hostile-input table: the
// request must be refused with status, a JSON error naming want, without
// changing anything or showing a token.
type hostileRequest struct {
	name           string
	method, target string
	// auth is the Authorization header: admin (the admin token), a wrong
	// token, or none.
	auth   string
	body   string
	status int
	want   string
}

// wrongToken is a near miss of the admin token: the answer shows neither.
const wrongToken = token + "-not"

var (
	admin = bearer(token)
	// overLimit is a selection one byte over MaxBodyBytes.
	overLimit = `{"queue":"` + strings.Repeat("q", httpapi.MaxBodyBytes-len(`{"queue":""}`)+1) + `"}`
)

var hostileJSON = []hostileRequest{
	{"Truncated", "POST", "/api/dlq/retry", admin, `{"queue":`, 400, "body: unexpected EOF"},
	{"NotJSON", "POST", "/api/dlq/purge", admin, `queue=q1`, 400, "body: invalid character"},
	{"WrongType", "POST", "/api/dlq/purge", admin, `{"all":"yes"}`, 400, "Selection.all of type bool"},
	{"UnknownField", "POST", "/api/dlq/purge", admin, `{"queu":"q1"}`, 400, `unknown field "queu"`},
	{"SecondDocument", "POST", "/api/dlq/purge", admin, `{"queue":"q1"}{"all":true}`, 400, "exactly one JSON document"},
	{"Array", "POST", "/api/dlq/retry", admin, `[{"all":true}]`, 400, "cannot unmarshal array"},
	{"EmptyBody", "POST", "/api/dlq/purge", admin, ``, 400, "select dead letters"},
	{"EmptySelection", "POST", "/api/dlq/purge", admin, `{}`, 400, "select dead letters"},
	{"AllCombined", "POST", "/api/dlq/purge", admin, `{"all":true,"queue":"q1"}`, 400, `"all" cannot be combined`},
	{"PauseWithBody", "POST", "/api/queues/q1/pause", admin, `{"all":true}`, 400, `unknown field "all"`},
}

var hostileLimits = []hostileRequest{
	{"OverTheLimit", "POST", "/api/dlq/purge", admin, overLimit, 413, "larger than the limit of 1 MiB"},
	{"OverTheLimitOnPause", "POST", "/api/queues/q1/pause", admin, overLimit, 413, "larger than the limit of 1 MiB"},
	{"ErrorFilterTooLong", "GET", "/api/dlq?error_contains=" + strings.Repeat("x", 1001), "", "", 400, "error_contains: 1001 bytes"},
	{"NegativeLimit", "GET", "/api/queues/q1/pending?limit=-1", "", "", 400, `limit="-1"`},
	{"LimitNotANumber", "GET", "/api/dlq?limit=1e9", "", "", 400, `limit="1e9"`},
}

var hostileMethods = []hostileRequest{
	{"GetRetry", "GET", "/api/dlq/retry", admin, "", 405, "use POST"},
	{"DeleteQueues", "DELETE", "/api/queues", admin, "", 405, "use GET"},
	{"PutPause", "PUT", "/api/queues/q1/pause", admin, "", 405, "use POST"},
	{"PatchMessage", "PATCH", "/api/messages/m1", admin, "", 405, "use GET or HEAD or DELETE"},
}

var hostileNames = []hostileRequest{
	{"TraversalInPath", "GET", "/api/queues/..%2F..%2Fetc%2Fpasswd", "", "", 400, `invalid queue name "../../etc/passwd"`},
	{"TraversalOnPause", "POST", "/api/queues/..%2Fq1/pause", admin, "", 400, `invalid queue name "../q1"`},
	{"TraversalInQuery", "GET", "/api/dlq?queue=..%2Fq1", "", "", 400, `invalid queue name "../q1"`},
	{"TraversalInBody", "POST", "/api/dlq/purge", admin, `{"queue":"../../q1"}`, 400, `invalid queue name "../../q1"`},
	{"DotDotInPath", "GET", "/api/queues/%2e%2e", "", "", 400, `invalid queue name ".."`},
	{"DotDotOnPause", "POST", "/api/queues/%2e%2e/pause", admin, "", 400, `invalid queue name ".."`},
	{"DotDotInBody", "POST", "/api/dlq/retry", admin, `{"queue":".."}`, 400, `invalid queue name ".."`},
	{"SQLInPath", "GET", "/api/queues/q1'%3B%20DROP%20TABLE%20x%3B--", "", "", 400, `invalid queue name "q1'; DROP TABLE x;--"`},
	{"SQLInQuery", "GET", "/api/dlq?queue=q1'%20OR%201=1--", "", "", 400, `invalid queue name "q1' OR 1=1--"`},
	{"SQLInBody", "POST", "/api/dlq/retry", admin, `{"queue":"q1' OR 1=1--"}`, 400, `invalid queue name "q1' OR 1=1--"`},
	{"SQLInInstance", "POST", "/api/dlq/purge", admin, `{"instance":"x' OR '1'='1"}`, 400, `instance id "x' OR '1'='1"`},
	{"SQLInMessageQueue", "DELETE", "/api/messages/m1?queue=q1'--", admin, "", 400, `invalid queue name "q1'--"`},
	{"NULInPath", "GET", "/api/queues/q1%00", "", "", 400, `invalid queue name "q1\x00"`},
	{"NULInBody", "POST", "/api/dlq/purge", admin, `{"queue":"q1\u0000"}`, 400, `invalid queue name "q1\x00"`},
	{"NULInID", "POST", "/api/dlq/purge", admin, `{"ids":["a\u0000b"]}`, 400, `message id "a\x00b"`},
	{"NULInMessagePath", "DELETE", "/api/messages/a%00b?queue=q1", admin, "", 400, `message id "a\x00b"`},
	{"NULAndBinaryBody", "POST", "/api/dlq/retry", admin, "\x00\xff", 400, "body: invalid character"},
	{"UnicodeInPath", "GET", "/api/queues/qu%C3%A9ue/pending", "", "", 400, `invalid queue name "quéue"`},
	{"RightToLeftOverride", "POST", "/api/queues/%E2%80%AEq1/pause", admin, "", 400, "invalid queue name"},
	{"NotUTF8MessageID", "DELETE", "/api/messages/%FF%FE?queue=q1", admin, "", 400, `message id "\xff\xfe"`},
	{"EmptyID", "POST", "/api/dlq/retry", admin, `{"ids":[""]}`, 400, `"ids": pubsub: invalid argument: empty message id`},
	{"BlankQueueOnPause", "POST", "/api/queues/%20/pause", admin, "", 400, `invalid queue name " "`},
}

var hostileQuery = []hostileRequest{
	{"UnknownParameter", "GET", "/api/dlq?queu=q1", "", "", 400, `unknown parameter "queu"`},
	{"ParameterTwice", "GET", "/api/dlq?queue=q1&queue=q2", "", "", 400, `"queue" given more than once`},
	{"Semicolon", "GET", "/api/dlq?queue=q1;x", "", "", 400, "query: invalid semicolon"},
	{"BadEscape", "GET", "/api/dlq?queue=%zz", "", "", 400, "query: invalid URL escape"},
	{"SelectionInQuery", "POST", "/api/dlq/purge?all=true", admin, `{"queue":"q1"}`, 400, `unknown parameter "all"`},
	{"TokenInQuery", "POST", "/api/dlq/purge?token=" + token, "", `{"all":true}`, 401, "missing bearer token"},
	{"NoToken", "POST", "/api/dlq/purge", "", `{"all":true}`, 401, "missing bearer token"},
	{"WrongToken", "POST", "/api/dlq/retry", bearer(wrongToken), `{"all":true}`, 403, "wrong admin token"},
}

// hostileRequests is the table by category.
var hostileRequests = []struct {
	category string
	cases    []hostileRequest
}{
	{"JSON", hostileJSON},
	{"Limits", hostileLimits},
	{"Methods", hostileMethods},
	{"Names", hostileNames},
	{"Query", hostileQuery},
}

// TestHostileRequests runs the HTTP API's hostile-input table (issue #15)
// on PostgreSQL and NATS, each holding a message and a dead letter: every
// request is refused with a 4xx and a JSON error naming what is wrong,
// nothing changes (queues' figures, pauses, instances, the audit log), and
// no answer shows the admin token.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"postgres", "nats"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			b := setupOn(t, kind, httpapi.Options{AdminToken: token})
			deadLetter(t, b.backend, "q1", `{"x":1}`)
			publish(t, b.backend, "q1", `{"x":2}`)
			for _, cat := range hostileRequests {
				for _, c := range cat.cases {
					t.Run(cat.category+"/"+c.name, func(t *testing.T) {
						before := testutil.Contents(t, b.backend)
						r := do(t, b.server, c.method, c.target, c.auth, c.body)
						require.Equal(t, c.status, r.status, "%s", r.body)
						require.Contains(t, r.header.Get("Content-Type"), "application/json")
						var e struct{ Error string }
						r.json(t, &e)
						require.Contains(t, e.Error, c.want)
						require.NotContains(t, string(r.body), token, "the token is shown")
						require.Equal(t, before, testutil.Contents(t, b.backend), "nothing is written")
					})
				}
			}
		})
	}
}
