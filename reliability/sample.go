package reliability

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Sample is the harness process's resident memory and goroutines at one
// moment.
type Sample struct {
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines int     `json:"goroutines"`
}

func (s Sample) max(o Sample) Sample {
	return Sample{RSSMiB: max(s.RSSMiB, o.RSSMiB), Goroutines: max(s.Goroutines, o.Goroutines)}
}

// sample reads VmRSS from /proc/self/status (0 where there is none) and
// counts goroutines.
func sample() Sample {
	s := Sample{Goroutines: runtime.NumGoroutine()}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); err == nil {
			s.RSSMiB = float64(kb) / 1024
			break
		}
	}
	return s
}

// sampler samples every second until stopped and keeps the peak.
type sampler struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	peak   Sample
}

func startSampler() *sampler {
	s := &sampler{stopCh: make(chan struct{}), peak: sample()}
	s.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				return
			case <-t.C:
				x := sample()
				s.mu.Lock()
				s.peak = s.peak.max(x)
				s.mu.Unlock()
			}
		}
	})
	return s
}

// stop stops sampling and returns the peak.
func (s *sampler) stop() Sample {
	close(s.stopCh)
	s.wg.Wait()
	return s.peak
}

// machine describes where the run happened.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
