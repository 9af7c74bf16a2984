package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter measures how busy the machine's CPUs were over a stretch of a
// run, and how much of them this process used, so that a figure limited
// by the machine's CPU shows it. It reads /proc (Linux, as the rest of the
// harness); without it, it reports nothing.
type cpuMeter struct {
	at          time.Time
	busy, total uint64
	self        time.Duration
	waited      time.Duration // cpuPressure at the start, -1 unknown
	ok          bool
}

func startCPU() cpuMeter {
	busy, total, err := machineCPU()
	return cpuMeter{at: time.Now(), busy: busy, total: total, self: processCPU(), waited: cpuPressure(), ok: err == nil}
}

// note says how busy the machine was since the meter started, and this
// process's part of it; "" when it cannot tell.
func (m cpuMeter) note() string { return m.use().note() }

// use is the CPU the machine and this process used since the meter
// started.
func (m cpuMeter) use() cpuUse {
	busy, total, err := machineCPU()
	u := cpuUse{wall: time.Since(m.at), self: processCPU() - m.self, waited: -1}
	if !m.ok || err != nil || total <= m.total || u.wall <= 0 {
		return cpuUse{}
	}
	u.busy, u.total, u.ok = busy-m.busy, total-m.total, true
	if waited := cpuPressure(); m.waited >= 0 && waited >= m.waited {
		u.waited = waited - m.waited
	}
	return u
}

// cpuUse is the CPU used over one stretch of a run, or several added up
// (the backlog scenario's samples, each some 50 ms).
type cpuUse struct {
	wall, self  time.Duration
	waited      time.Duration // -1: unknown
	busy, total uint64        // the machine's jiffies
	ok          bool
}

// add adds v's stretch to u's.
func (u *cpuUse) add(v cpuUse) {
	switch {
	case !v.ok:
		return
	case !u.ok:
		*u = v
		return
	}
	u.wall += v.wall
	u.self += v.self
	u.busy += v.busy
	u.total += v.total
	if u.waited >= 0 && v.waited >= 0 {
		u.waited += v.waited
	} else {
		u.waited = -1
	}
}

// note says how busy the machine was, and this process's part of it; ""
// when it cannot tell.
func (u cpuUse) note() string {
	if !u.ok || u.total == 0 || u.wall <= 0 {
		return ""
	}
	machine := float64(u.busy) / float64(u.total)
	self := u.self.Seconds() / (u.wall.Seconds() * float64(runtime.NumCPU()))
	note := fmt.Sprintf("CPU while it ran: the machine %.0f%% busy, this process %.0f%% of the machine", 100*machine, 100*self)
	if u.waited >= 0 {
		note += fmt.Sprintf(", some task waiting for a CPU %.0f%% of the time", 100*u.waited.Seconds()/u.wall.Seconds())
	}
	return note
}

// cpuPressure is the time some task waited for a CPU since boot
// (/proc/pressure/cpu, "some ... total=µs"), -1 when unknown. Unlike
// /proc/stat, which counts a CPU busy or idle at each clock tick, it is
// exact, and it says what busy does not: whether work queued for a CPU.
func cpuPressure() time.Duration {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	_, total, ok := strings.Cut(line, "total=")
	us, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if !strings.HasPrefix(line, "some ") || !ok || err != nil {
		return -1
	}
	return time.Duration(us) * time.Microsecond
}

// machineCPU reads the busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

// parseCPULine parses /proc/stat's first line: "cpu user nice system idle
// iowait irq softirq steal ...". Idle and iowait are not busy.
func parseCPULine(line string) (busy, total uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest time is counted in user already
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// processCPU is the CPU time this process used so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
