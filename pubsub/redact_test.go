package pubsub_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
	}{
		{"PasswordInUserinfo", "postgres://app:s3cret@db:5432/singularity", "postgres://app:xxxxx@db:5432/singularity"},
		{"NoPassword", "postgresql://localhost/singularity", "postgresql://localhost/singularity"},
		{"UnchangedWhenNothingSecret", "mem://", "mem://"},
		{"PasswordParam", "postgres://db/x?sslmode=disable&password=s3cret", "postgres://db/x?password=xxxxx&sslmode=disable"},
		{"NatsToken", "nats://s3cret@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"NatsUserPass", "nats://u:s3cret@127.0.0.1:4222", "nats://u:xxxxx@127.0.0.1:4222"},
		{"Unparseable", "postgres://app:s3cret@db:badport/x", "postgres://(not a valid URL: not shown)"},
		// The hostile-input battery's cases: none may echo the secret.
		{"SpaceInUser", "postgres://us er:s3cret@127.0.0.1/db", "postgres://(not a valid URL: not shown)"},
		{"SlashInPassword", "postgres://app:s3/cret@127.0.0.1/db", "postgres://(not a valid URL: not shown)"},
		{"NatsTokenBadHost", "nats://s3cret@[::1", "nats://(not a valid URL: not shown)"},
		{"KeywordValueDSN", "host=db user=app password=s3cret dbname=x", "(not a valid URL: not shown)"},
		{"Opaque", "postgres:s3cret@db/x", "(not a valid URL: not shown)"},
		{"SemicolonQuery", "postgres://db/x?password=s3cret;x", "postgres://db/x?(not a valid URL: not shown)"},
		{"Empty", "", ""},
		{"NoSchemeNoSecret", "localhost/singularity", "localhost/singularity"},
		{"NoSchemeWithUserinfo", "app:s3cret@localhost/x", "(not a valid URL: not shown)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := pubsub.RedactURL(c.in)
			require.Equal(t, c.want, got)
			require.NotContains(t, got, "s3cret")
		})
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	s := pubsub.NewCapabilities(pubsub.CapDurable, pubsub.CapDeadLetters)
	require.True(t, s.Has(pubsub.CapDurable))
	require.False(t, s.Has(pubsub.CapPriorityOrder))
	require.Equal(t, "durable,dead_letters", s.String())

	want, err := pubsub.ParseCapabilities("durable, priority_order")
	require.NoError(t, err)
	require.Equal(t, "priority_order", s.Missing(want).String())

	_, err = pubsub.ParseCapabilities("durable,teleport")
	require.ErrorContains(t, err, `unknown capability "teleport"`)
}

func TestValidateQueueName(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"proposals_for_consensus_queue", "a.b", "...", "..a", "q@.."} {
		require.NoError(t, pubsub.ValidateQueueName(good), good)
	}
	for _, bad := range []string{"", "has space", "semi;colon", "quote'd", ".", "..", "..@s1", "../x"} {
		err := pubsub.ValidateQueueName(bad)
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName, bad)
	}
}

func TestURLSecrets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     []string
	}{
		{"Password", "postgres://app:s3cret@db/x", []string{"s3cret"}},
		{"SecretParam", "postgres://db/x?sslmode=disable&password=s3cret", []string{"s3cret"}},
		{"NatsToken", "nats://tok3n@127.0.0.1:4222", []string{"tok3n"}},
		{"PostgresUserIsNoSecret", "postgres://app@db/x", nil},
		{"Unparseable", "postgres://app:s3cret@db:badport/x", []string{"s3cret"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, pubsub.URLSecrets(c.in))
		})
	}
	require.Equal(t, "dial postgres://app:xxxxx@db failed", pubsub.RedactText("dial postgres://app:s3cret@db failed"))
}

func TestRedactError(t *testing.T) {
	t.Parallel()
	require.NoError(t, pubsub.RedactError(nil, "s3cret"))
	plain := errors.New("connection refused")
	require.Same(t, plain, pubsub.RedactError(plain, "s3cret", ""), "nothing to scrub: the error itself")

	cause := errors.New("password authentication failed for s3cret")
	err := pubsub.RedactError(fmt.Errorf("connect to postgres://app:0ther@db: %w", cause), "s3cret", "")
	require.Equal(t, "connect to postgres://app:xxxxx@db: password authentication failed for xxxxx", err.Error())
	require.ErrorIs(t, err, cause, "the chain is kept")
}
