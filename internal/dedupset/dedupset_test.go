package dedupset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSet(t *testing.T) {
	t.Parallel()
	var s Set[string]
	t0 := time.Unix(1000, 0)
	_, ok := s.Lookup("k", t0)
	require.False(t, ok)

	s.Add("k", "id1", t0, time.Minute)
	id, ok := s.Lookup("k", t0.Add(59*time.Second))
	require.True(t, ok)
	require.Equal(t, "id1", id)

	_, ok = s.Lookup("k", t0.Add(time.Minute))
	require.False(t, ok, "the window ends exactly a window after the add")
	require.Zero(t, s.Len(), "expired keys are dropped")

	// A key added again keeps its newer window when the older stamp passes.
	s.Add("a", "id2", t0, time.Second)
	s.Add("a", "id3", t0.Add(500*time.Millisecond), time.Second)
	id, ok = s.Lookup("a", t0.Add(1200*time.Millisecond))
	require.True(t, ok)
	require.Equal(t, "id3", id)
	_, ok = s.Lookup("a", t0.Add(1500*time.Millisecond))
	require.False(t, ok)
	require.Zero(t, s.Len())
}

func TestSetBounded(t *testing.T) {
	t.Parallel()
	var s Set[string]
	t0 := time.Unix(1000, 0)
	for i := range 100_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		s.Add(string(rune('a'+i%26))+time.Duration(i).String(), "id", now, 10*time.Millisecond)
		s.Lookup("x", now)
	}
	require.LessOrEqual(t, s.Len(), 11, "about one window's keys are kept")
	require.LessOrEqual(t, cap(s.order), 2048)
}

func TestSetLimit(t *testing.T) {
	t.Parallel()
	s := Set[string]{Limit: 3}
	t0 := time.Unix(1000, 0)
	for i, k := range []string{"a", "b", "c", "b", "d"} {
		s.Add(k, "id-"+k, t0.Add(time.Duration(i)*time.Second), time.Hour)
	}
	// Adding "b" again dropped "a", the oldest, though its window runs;
	// adding "d" dropped b's first stamp, which no longer held it.
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true} {
		_, ok := s.Lookup(k, t0)
		require.Equal(t, want, ok, k)
	}
	for i := range 10_000 {
		s.Add(time.Duration(i).String(), "id", t0, time.Hour)
	}
	require.Equal(t, 3, s.Len())
	require.LessOrEqual(t, cap(s.order), 2048)
}
