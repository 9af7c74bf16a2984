package bench

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPayloadIsJSONOfExactSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{minPayload, 256, 4096} {
		tmpl, err := payloadTemplate(size)
		require.NoError(t, err)
		for _, seq := range []int64{0, 7, 123456789, probeSeq} {
			p := newPayload(tmpl, seq)
			require.Len(t, p, size)
			require.True(t, json.Valid(p), "payload %q", p)
			got, ok := payloadSeq(p)
			require.True(t, ok)
			require.Equal(t, seq, got)
		}
	}
	_, err := payloadTemplate(minPayload - 1)
	require.Error(t, err)
	_, ok := payloadSeq([]byte(`{"other":1}`))
	require.False(t, ok)
}

func TestSummarizeNearestRank(t *testing.T) {
	t.Parallel()
	ns := make([]int64, 100)
	for i := range ns {
		ns[99-i] = int64(i+1) * 1e6 // 1..100 ms, reversed
	}
	l := summarize(ns)
	require.Equal(t, 50.0, l.P50Ms)
	require.Equal(t, 95.0, l.P95Ms)
	require.Equal(t, 99.0, l.P99Ms)
	require.Equal(t, 100.0, l.MaxMs)
	require.Equal(t, 100, l.Samples)
	require.Nil(t, summarize(nil))
}
