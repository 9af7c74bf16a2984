package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCPULine(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := parseCPULine("cpu  100 5 50 800 40 3 2 1 7 0")
	require.NoError(t, err)
	require.Equal(t, uint64(100+5+50+3+2+1), busy)
	require.Equal(t, uint64(100+5+50+800+40+3+2+1), total)

	_, _, err = parseCPULine("intr 12 3")
	require.ErrorContains(t, err, "unexpected first line")
	_, _, err = parseCPULine("cpu 1 2 x 4 5")
	require.ErrorContains(t, err, `"x"`)
}
