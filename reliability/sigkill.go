package reliability

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/quantumflow/quantumflow/internal/journal"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/pubsub"
	"github.com/quantumflow/quantumflow/topology"
)

// ChildArg is the first argument that makes the harness's executable run
// as the sigkill scenario's consumer process (ChildMain) instead.
const ChildArg = "__reliability_consumer"

// ChildMain runs CentralCloud consuming the flow named by args (-url,
// -suffix) until ctx ends, appending every message it handles to the
// journal named by -journal before acking it. It returns the exit status.
func ChildMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(ChildArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "", "backend URL")
	suffix := fs.String("suffix", "", "queue suffix")
	path := fs.String("journal", "", "journal file")
	if err := fs.Parse(args); err != nil || *u == "" || *path == "" {
		return 2
	}
	if err := child(ctx, *u, *suffix, *path); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "consumer:", err)
		return 1
	}
	return 0
}

func child(ctx context.Context, u, suffix, path string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := pubsub.Open(ctx, u, pubsub.WithLogger(logger))
	if err != nil {
		return err
	}
	defer b.Close()
	j, err := journal.Open(path, topology.CentralCloud, "cc")
	if err != nil {
		return err
	}
	defer j.Close()
	cc, err := centralCloud(b, suffix, func(msg *message.Message) error {
		_, err := decode(msg.Payload)
		return err
	}, j.Middleware)
	if err != nil {
		return err
	}
	return cc.Run(ctx)
}

// consumerProcess is the sigkill scenario's consumer, started again after
// each kill.
type consumerProcess struct {
	exe, url, suffix, journal, logDir string
	cmd                               *exec.Cmd
	exited                            chan struct{}
	runs                              int
}

func (p *consumerProcess) start() error {
	p.runs++
	logFile, err := os.Create(filepath.Join(p.logDir, fmt.Sprintf("consumer.%d.log", p.runs)))
	if err != nil {
		return err
	}
	cmd := exec.Command(p.exe, ChildArg, "-url", p.url, "-suffix", p.suffix, "-journal", p.journal)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := pgtest.Spawn(cmd); err != nil {
		_ = logFile.Close()
		return err
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
	}()
	return nil
}

// stop sends sig and waits up to a minute for the process to exit.
func (p *consumerProcess) stop(sig syscall.Signal) error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("consumer (pid %d) did not exit within a minute of %s", p.cmd.Process.Pid, sig)
	}
}

// readJournal refills the tally's deliveries from the journal.
func (f *flow) readJournal(path string) error {
	entries, _, err := journal.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f.t.mu.Lock()
	clear(f.t.seen)
	f.t.mu.Unlock()
	f.t.consumed.Store(0)
	for _, e := range entries {
		if e.Event != journal.Consumed {
			continue
		}
		if p, err := decode(e.PayloadBytes()); err == nil {
			f.t.observe(p.N, p.Sent)
		}
	}
	return nil
}

// sigkillScenario consumes in a process of its own, SIGKILLed three times
// while messages flow and started again each time.
func sigkillScenario(ctx context.Context, r *run) error {
	if r.cfg.Executable == "" {
		return errors.New("no executable to run the consumer process (Config.Executable)")
	}
	n, rate := pick(r, 30_000, 2_000), pick(r, 500.0, 200.0)
	u, err := r.env.url(ctx, r.backend)
	if err != nil {
		return err
	}
	u = withParams(u, leaseParams(r.backend)...)
	dir, err := os.MkdirTemp("", "qf-reliability-sigkill-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := r.openFlow(ctx, u, n)
	if err != nil {
		return err
	}
	defer f.close()
	r.res.Done = fmt.Sprintf("%d messages at %.0f/s (batches of 10); CentralCloud in a process of its own, SIGKILLed after each quarter of them was consumed (three times) and started again; lease 5s", n, rate)
	p := &consumerProcess{exe: r.cfg.Executable, url: u, suffix: f.suffix, journal: filepath.Join(dir, "journal"), logDir: dir}
	if err := p.start(); err != nil {
		return err
	}
	defer p.stop(syscall.SIGKILL)
	pubDone := make(chan error, 1)
	go func() { pubDone <- f.publish(ctx, load{To: n, Batch: 10, Workers: 8, Rate: rate}) }()
	for k := 1; k <= 3; k++ {
		if err := f.waitJournal(ctx, p, int64(n*k/4), 2*time.Minute); err != nil {
			return fmt.Errorf("before kill %d: %w", k, err)
		}
		r.logf("SIGKILL consumer (pid %d), %d consumed", p.cmd.Process.Pid, f.t.consumed.Load())
		if err := p.stop(syscall.SIGKILL); err != nil {
			return err
		}
		if err := p.start(); err != nil {
			return err
		}
	}
	if err := <-pubDone; err != nil {
		return err
	}
	if err := f.waitJournal(ctx, p, int64(n), pick(r, 3*time.Minute, time.Minute)); err != nil {
		r.res.fail("%v", err)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		r.res.fail("graceful stop: %v", err)
	}
	if err := f.readJournal(p.journal); err != nil {
		return err
	}
	_, err = f.drain(ctx, time.Second)
	r.res.figure("consumer processes started", "%d", p.runs)
	return err
}

// waitJournal waits until the journal shows want distinct messages
// consumed.
func (f *flow) waitJournal(ctx context.Context, p *consumerProcess, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("consumer process %d exited unexpectedly (its log: %s)", p.runs, p.logDir)
		default:
		}
		if err := f.readJournal(p.journal); err != nil {
			return err
		}
		got := f.t.consumed.Load()
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %d messages consumed: %d", timeout, want, got)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}
