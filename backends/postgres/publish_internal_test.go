package postgres

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTakeGroup(t *testing.T) {
	t.Parallel()
	req := func(n int) *pubReq {
		r := &pubReq{}
		r.rows.ids = make([]string, n)
		return r
	}
	sizes := func(rs []*pubReq) []int {
		var out []int
		for _, r := range rs {
			out = append(out, r.rows.len())
		}
		return out
	}
	pending := []*pubReq{req(400), req(500), req(200), req(1)}

	group, rest, rows := takeGroup(pending, 1101, 1000)
	require.Equal(t, []int{400, 500}, sizes(group), "publishes in arrival order while they fit")
	require.Equal(t, []int{200, 1}, sizes(rest))
	require.Equal(t, 201, rows)

	group, rest, rows = takeGroup([]*pubReq{req(1500), req(1)}, 1501, 1000)
	require.Equal(t, []int{1500}, sizes(group), "a publish larger than the limit goes alone, whole")
	require.Equal(t, []int{1}, sizes(rest))
	require.Equal(t, 1, rows)

	group = append(group, req(7))
	require.Equal(t, []int{1}, sizes(rest), "appending to a group does not overwrite what is left")
	require.Len(t, group, 2)
}
