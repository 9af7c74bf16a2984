package bench

import (
	"fmt"
	"runtime"
	"testing"
	"time"

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

func TestCPUUseAdds(t *testing.T) {
	var u cpuUse
	require.Empty(t, u.note(), "nothing measured")
	u.add(cpuUse{})
	require.Empty(t, u.note(), "an unknown stretch adds nothing")
	u.add(cpuUse{wall: time.Second, self: time.Second, waited: 100 * time.Millisecond, busy: 100, total: 200, ok: true})
	u.add(cpuUse{wall: time.Second, self: time.Second, waited: 300 * time.Millisecond, busy: 300, total: 400, ok: true})
	cpus := runtime.NumCPU()
	require.Equal(t, fmt.Sprintf("CPU while it ran: the machine 67%% busy, this process %.0f%% of the machine, some task waiting for a CPU 20%% of the time", 100/float64(cpus)), u.note())
	u.add(cpuUse{wall: time.Second, busy: 1, total: 2, waited: -1, ok: true})
	require.NotContains(t, u.note(), "waiting", "pressure unknown for one stretch: unknown for all")
}
