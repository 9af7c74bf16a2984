package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
)

// Machine describes where a run happened; figures mean little without it.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	MemoryGiB  int    `json:"memory_gib,omitempty"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	GoVersion  string `json:"go_version"`
	// PostgreSQL is the server version of the throwaway cluster.
	PostgreSQL         string            `json:"postgresql,omitempty"`
	PostgreSQLSettings map[string]string `json:"postgresql_settings,omitempty"`
	NATSServer         string            `json:"nats_server"`
	// Durability says how durable each server was set up to be.
	Durability map[string]string `json:"durability"`
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute figures when the
	// run started: other work on the machine skews every figure.
	LoadAverage string `json:"load_average,omitempty"`
}

func readMachine() Machine {
	m := Machine{
		CPU:        "unknown",
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion:  runtime.Version(),
		NATSServer: natsVersion(),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
				m.MemoryGiB = (kb + 512*1024) / (1024 * 1024)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Summary is the one-line form printed beside every result.
func (m Machine) Summary() string {
	parts := []string{fmt.Sprintf("%s, %d cores", m.CPU, m.Cores)}
	if m.MemoryGiB > 0 {
		parts = append(parts, fmt.Sprintf("%d GiB", m.MemoryGiB))
	}
	parts = append(parts, m.GoVersion)
	if m.PostgreSQL != "" {
		pg := "PostgreSQL " + m.PostgreSQL
		if f := m.PostgreSQLSettings["fsync"]; f != "" {
			pg += fmt.Sprintf(" (fsync=%s, synchronous_commit=%s)", f, m.PostgreSQLSettings["synchronous_commit"])
		}
		parts = append(parts, pg)
	}
	parts = append(parts, "nats-server "+m.NATSServer)
	return strings.Join(parts, "; ")
}

// settingsLine lists the PostgreSQL settings, sorted.
func (m Machine) settingsLine() string {
	keys := make([]string, 0, len(m.PostgreSQLSettings))
	for k := range m.PostgreSQLSettings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", k, m.PostgreSQLSettings[k])
	}
	return b.String()
}
