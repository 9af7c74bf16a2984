package nats

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestAckMetadata checks the reply-subject parser against nats.go's own,
// on both ack subject layouts the server sends.
func TestAckMetadata(t *testing.T) {
	t.Parallel()
	for _, reply := range []string{
		"$JS.ACK.QF_q.workers.3.42.40.1795000000123456789.7",
		"$JS.ACK._.ACCHASH.QF_q.workers.3.42.40.1795000000123456789.7.tok",
		"$JS.ACK.hub.ACCHASH.QF_q.workers.1.9.9.1795000000123456789.0",
		"$JS.ACK.hub.ACCHASH.QF_q.workers.1.9.9.1795000000123456789.0.tok.future",
	} {
		m := &nats.Msg{Reply: reply, Sub: &nats.Subscription{}}
		want, err := m.Metadata()
		require.NoError(t, err, reply)
		var got nats.MsgMetadata
		require.NoError(t, ackMetadata(reply, &got), reply)
		require.Equal(t, *want, got, reply)
	}
	for _, reply := range []string{"", "_INBOX.x", "$JS.ACK.a.b.c", "$JS.ACK.QF_q.workers.1.9.9.1795000000123456789"} {
		var got nats.MsgMetadata
		require.Error(t, ackMetadata(reply, &got), reply)
	}
}
