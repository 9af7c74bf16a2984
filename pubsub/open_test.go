package pubsub_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/quantumflow/quantumflow/backends/mem"
	"github.com/quantumflow/quantumflow/pubsub"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("UnknownSchemeListsKnownOnes", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, "kafka://user:s3cret@broker/x")
		require.ErrorIs(t, err, pubsub.ErrUnknownScheme)
		require.ErrorContains(t, err, `"kafka"`)
		require.ErrorContains(t, err, "mem")
		require.NotContains(t, err.Error(), "s3cret")
	})

	t.Run("NoScheme", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, "localhost/singularity")
		require.ErrorIs(t, err, pubsub.ErrUnknownScheme)
		require.ErrorContains(t, err, "no scheme")
	})

	t.Run("UnparseableURLHidesPassword", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, "postgres://app:s3cret@db:port/x")
		require.ErrorIs(t, err, pubsub.ErrInvalidURL)
		require.NotContains(t, err.Error(), "s3cret")
	})

	t.Run("HostileURLsNeverEchoSecrets", func(t *testing.T) {
		t.Parallel()
		for _, raw := range []string{
			"postgres://us er:S3CRET@127.0.0.1/db",
			"postgres://app:S3/CRET@127.0.0.1/db",
			"nats://S3CRET@[::1",
			"host=127.0.0.1 user=app password=S3CRET dbname=db",
			"postgres:S3CRET@127.0.0.1/db",
			"postgres://127.0.0.1/db?password=S3CRET;x",
		} {
			_, err := pubsub.Open(ctx, raw)
			require.Error(t, err, raw)
			require.NotContains(t, err.Error(), "S3CRET", raw)
		}
	})

	t.Run("SemicolonInQueryRefused", func(t *testing.T) {
		t.Parallel()
		// Go's url.Query drops such pairs: the URL would open with the
		// parameter silently unset.
		for raw, param := range map[string]string{
			"mem://x?bogus=1;2": "bogus",
			"postgres://db/x?sslmode=disable&schema=other;x": "schema",
			"nats://127.0.0.1:4222?prefix=a;b":               "prefix",
		} {
			_, err := pubsub.Open(ctx, raw)
			require.ErrorIs(t, err, pubsub.ErrInvalidURL, raw)
			require.ErrorContains(t, err, `"`+param+`"`, raw)
		}
	})

	t.Run("RequireMissingCapabilityFailsAtOpen", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, "mem://?require=durable,dead_letters")
		require.ErrorIs(t, err, pubsub.ErrUnsupported)
		require.ErrorContains(t, err, "durable")

		_, err = pubsub.Open(ctx, "mem://", pubsub.Require(pubsub.CapTransactionalPublish))
		require.ErrorIs(t, err, pubsub.ErrUnsupported)
	})

	t.Run("RequirePresentCapability", func(t *testing.T) {
		t.Parallel()
		b, err := pubsub.Open(ctx, "mem://?require=priority_order")
		require.NoError(t, err)
		require.True(t, b.Capabilities().Has(pubsub.CapPriorityOrder))
		require.Equal(t, "mem", b.Scheme())
		require.NoError(t, b.Close())
		require.NoError(t, b.Close(), "Close is idempotent")
	})

	t.Run("UnknownCapability", func(t *testing.T) {
		t.Parallel()
		_, err := pubsub.Open(ctx, "mem://?require=teleport")
		require.ErrorIs(t, err, pubsub.ErrInvalidURL)
		require.ErrorContains(t, err, "teleport")
	})

	t.Run("AdminArgumentsValidatedOnce", func(t *testing.T) {
		t.Parallel()
		b, err := pubsub.Open(ctx, "mem://")
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		_, err = b.Stats(ctx, "bad name")
		require.ErrorIs(t, err, pubsub.ErrInvalidQueueName)
		err = b.DeclareQueue(ctx, pubsub.QueueSpec{Name: "q", MaxRetries: -1})
		require.ErrorContains(t, err, "max_retries must be >= 0")
		_, err = b.ListDeadLetters(ctx, pubsub.DeadLetterQuery{Limit: -1})
		require.ErrorContains(t, err, "limit must be >= 0")
	})
}
