//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quantumflow/quantumflow/internal/pgtest"
)

// process is one program the test runs, started again after it is killed:
// each run (incarnation) logs to a file of its own in the test's
// directory. Every process is killed when the test ends, and on failure
// its logs are printed.
type process struct {
	t    *testing.T
	name string
	path string
	args []string
	env  []string
	dir  string // where the logs go

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the current run exited and was reaped
	exitErr error
	// signalled is set when the test signals the current run: any other
	// exit is unexpected.
	signalled bool
	runs      int
	logs      []string
}

func newProcess(t *testing.T, name, path string, args, env []string) *process {
	p := &process{t: t, name: name, path: path, args: args, env: env, dir: workDir(t, filepath.Join("logs", name))}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.printLogs()
		}
	})
	return p
}

// start starts a new run with the process's arguments and extra; the
// previous run must have exited.
func (p *process) start(extra ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			p.t.Fatalf("%s: started while running", p.name)
		}
	}
	p.runs++
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, p.runs))
	logFile, err := os.Create(logPath)
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	cmd := exec.Command(p.path, append(slices.Clone(p.args), extra...)...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Killed with the test binary too, should it die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pgtest.Spawn(cmd); err != nil {
		_ = logFile.Close()
		p.t.Fatalf("%s: start: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.exitErr, p.signalled = cmd, exited, nil, false
	p.logs = append(p.logs, logPath)
	go func() {
		err := cmd.Wait() // reaps it: a pid that is gone is gone
		_ = logFile.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
}

// pid returns the current run's process id.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// running reports whether the current run has not exited.
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the current run and waits up to d for it to exit;
// it returns the run's exit error, or an error when it did not exit.
func (p *process) signal(sig syscall.Signal, d time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	p.mu.Lock()
	p.signalled = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(sig) // an exited process: nothing to do
	select {
	case <-exited:
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) did not exit within %s of %s", p.name, cmd.Process.Pid, d, sig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// unexpectedExit returns an error when the current run exited without
// the test signalling it.
func (p *process) unexpectedExit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.signalled {
		return nil
	}
	select {
	case <-p.exited:
		return fmt.Errorf("%s (pid %d) exited unexpectedly: %v", p.name, p.cmd.Process.Pid, p.exitErr)
	default:
		return nil
	}
}

// kill SIGKILLs the current run and waits until it is reaped.
func (p *process) kill() {
	if err := p.signal(syscall.SIGKILL, time.Minute); err != nil && !isSignalled(err) {
		p.t.Logf("%s: %v", p.name, err)
	}
}

func isSignalled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// logged reports whether the current run's log contains s.
func (p *process) logged(s string) bool {
	p.mu.Lock()
	path := p.logs[len(p.logs)-1]
	p.mu.Unlock()
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}

// printLogs prints the logs of every run (the last 64 KiB of each).
func (p *process) printLogs() {
	p.mu.Lock()
	logs := append([]string(nil), p.logs...)
	p.mu.Unlock()
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			p.t.Logf("%s: %v", path, err)
			continue
		}
		const max = 64 << 10
		if len(b) > max {
			b = append([]byte("...\n"), b[len(b)-max:]...)
		}
		p.t.Logf("--- %s ---\n%s", filepath.Base(path), b)
	}
}

// keepEnv names a directory where the test keeps the services' logs and
// journals, and the NATS nodes' data, instead of removing them.
const keepEnv = "QUANTUM_FLOW_E2E_KEEP"

// workDir returns a directory for the test's files: a new temporary one,
// or one under QUANTUM_FLOW_E2E_KEEP.
func workDir(t *testing.T, name string) string {
	t.Helper()
	keep := os.Getenv(keepEnv)
	if keep == "" {
		return t.TempDir()
	}
	dir := filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"), name)
	// Journals of an earlier run would be appended to.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freePort returns a loopback TCP port the OS had free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// environ returns the test's environment without QuantumFlow's and the NATS
// node configuration's variables, plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "QUANTUM_FLOW_") || strings.HasPrefix(kv, "NATS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// group is the processes of one test.
type group struct {
	t     *testing.T
	mu    sync.Mutex
	procs []*process
}

func newGroup(t *testing.T) *group { return &group{t: t} }

// add returns a new process of the group, not started.
func (g *group) add(name, path string, args, env []string) *process {
	p := newProcess(g.t, name, path, args, env)
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return p
}

// waitUntil polls cond until it reports true, and fails the test after
// timeout with what cond last said, or at once when a process of the
// group exited without the test asking it to.
func (g *group) waitUntil(timeout time.Duration, what string, cond func() (bool, string)) {
	g.t.Helper()
	g.waitEvery(pollInterval, timeout, what, cond)
}

// waitEvery is waitUntil polling every interval.
func (g *group) waitEvery(interval, timeout time.Duration, what string, cond func() (bool, string)) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if err := g.unexpectedExit(); err != nil {
			g.t.Fatalf("waiting for %s: %v", what, err)
		}
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("waited %s for %s: %s", timeout, what, status)
		}
		time.Sleep(interval)
	}
}

// unexpectedExit returns an error naming a process of the group that
// exited without the test asking it to.
func (g *group) unexpectedExit() error {
	g.mu.Lock()
	procs := slices.Clone(g.procs)
	g.mu.Unlock()
	for _, p := range procs {
		if err := p.unexpectedExit(); err != nil {
			return err
		}
	}
	return nil
}

const pollInterval = 100 * time.Millisecond
