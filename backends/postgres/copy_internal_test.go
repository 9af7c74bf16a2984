package postgres

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCopyable(t *testing.T) {
	t.Parallel()
	rowsOf := func(n, size int) *rows {
		r := &rows{}
		for range n {
			r.ids = append(r.ids, "id")
			r.payloads = append(r.payloads, make([]byte, size))
		}
		return r
	}
	require.True(t, rowsOf(copyMinRows, copyMinPayload).copyable())
	require.False(t, rowsOf(copyMinRows-1, 4<<10).copyable(), "too few rows")
	require.False(t, rowsOf(100, 256).copyable(), "small payloads")

	delayed := rowsOf(100, 4<<10)
	delayed.availableAt = make([]time.Time, 100)
	require.False(t, delayed.copyable(), "available_at is computed by the server")

	keyed := rowsOf(100, 4<<10)
	keyed.keys = make([]string, 100)
	require.False(t, keyed.copyable(), "the dedup insert decides which rows go in")
}
