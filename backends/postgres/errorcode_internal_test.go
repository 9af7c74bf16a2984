package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/pubsub"
)

func TestErrorCode(t *testing.T) {
	t.Parallel()
	d := &Driver{}
	pg := func(code string) error { return fmt.Errorf("claim: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		err  error
		want pubsub.ErrorCode
	}{
		{pg("42P01"), pubsub.CodeNotInitialized},
		{pg("3F000"), pubsub.CodeNotInitialized},
		{d.wrapErr(pg("42P01")), pubsub.CodeNotInitialized},
		{pg("08006"), pubsub.CodeUnavailable},
		{pg("57P01"), pubsub.CodeUnavailable},
		{pg("53300"), pubsub.CodeUnavailable},
		{pg("40P01"), pubsub.CodeUnavailable},
		{pg("22021"), pubsub.CodeInvalidArgument},
		{pg("42601"), pubsub.CodeUnknown},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, pubsub.CodeUnavailable},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), pubsub.CodeUnavailable},
		{fmt.Errorf("send: %w", context.DeadlineExceeded), pubsub.CodeCanceled},
		{context.Canceled, pubsub.CodeCanceled},
		{pubsub.ErrQueueNotFound, pubsub.CodeNotFound},
		{fmt.Errorf("%w: message id: not valid UTF-8", pubsub.ErrInvalidArgument), pubsub.CodeInvalidArgument},
		{errors.New("something else"), pubsub.CodeUnknown},
	} {
		require.Equal(t, c.want, d.ErrorCode(c.err), "%v", c.err)
	}
	d.closed.Store(true)
	require.Equal(t, pubsub.CodeClosed, d.ErrorCode(errors.New("closed pool")), "anything after Close")
}
