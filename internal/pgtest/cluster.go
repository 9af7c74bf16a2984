// Package pgtest runs a throwaway PostgreSQL server for tests and
// benchmarks.
//
// Start either uses the server named by QUANTUM_FLOW_TEST_DATABASE_URL or
// starts a private cluster from Debian's PostgreSQL binaries
// (/usr/lib/postgresql/*/bin, or initdb found on PATH): initdb in a
// temporary directory, the server on a free loopback port with its Unix
// socket in that directory, fsync left on so that what tests and
// benchmarks measure is honest durability. Sessions and CI run as root,
// which initdb and postgres refuse, so as root the server runs as the
// postgres OS user.
//
// The server is a child of the calling process and receives SIGQUIT
// (immediate shutdown) if that process dies, so a killed test binary does
// not leave a server behind.
//
// Test helpers (Main, Database) are in testing.go; everything else here
// works without the testing package, for the benchmark harness.
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the environment variable holding the URL of an
// existing server to use instead of starting one. Its user must be allowed
// to create databases.
const EnvDatabaseURL = "QUANTUM_FLOW_TEST_DATABASE_URL"

// EnvBinDir names an environment variable that may point at a directory
// holding initdb and postgres, overriding the search.
const EnvBinDir = "QUANTUM_FLOW_PG_BINDIR"

// ErrUnavailable is returned by Start when no PostgreSQL server can be
// started or reached.
var ErrUnavailable = errors.New("pgtest: PostgreSQL unavailable")

// ErrExternal is returned by operations that need a server this package
// started (Restart) when the cluster is an external one.
var ErrExternal = errors.New("pgtest: external server (from " + EnvDatabaseURL + ") cannot be restarted")

// Cluster is a running PostgreSQL server.
type Cluster struct {
	adminURL string // URL of the maintenance database ("postgres")
	external bool

	// Only for clusters this package started:
	binDir string
	dir    string // temp dir: data/, socket, log
	port   int
	cred   *syscall.Credential

	mu      sync.Mutex
	proc    *os.Process
	exited  chan struct{} // closed when proc has been waited for
	stopped bool

	dbSeq atomic.Int64
}

// Start starts a throwaway server, or connects to the one named by
// QUANTUM_FLOW_TEST_DATABASE_URL. Errors wrap ErrUnavailable when
// PostgreSQL is missing or does not come up.
func Start(ctx context.Context) (*Cluster, error) {
	if raw := os.Getenv(EnvDatabaseURL); raw != "" {
		c := &Cluster{adminURL: raw, external: true}
		if err := c.ping(ctx); err != nil {
			return nil, fmt.Errorf("%w: %s is set but the server does not answer: %v", ErrUnavailable, EnvDatabaseURL, err)
		}
		return c, nil
	}
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{binDir: binDir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("%w: running as root and there is no postgres OS user to run the server as: %v", ErrUnavailable, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp(tempRoot(c.cred != nil), fmt.Sprintf("qf-pgtest-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgtest: temp dir: %w", err)
	}
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: chown %s to postgres: %w", dir, err)
		}
	}
	if err := c.initdb(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A port picked now can be taken by someone else before the server
	// binds it; try a few.
	for try := 0; ; try++ {
		c.port, err = freePort()
		if err == nil {
			err = c.start(ctx)
		}
		if err == nil {
			break
		}
		if try == 2 || ctx.Err() != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	c.adminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	return c, nil
}

// URL returns the URL of the server's maintenance database. Tests should
// use NewDatabase instead.
func (c *Cluster) URL() string { return c.adminURL }

// External reports whether the cluster is an existing server named by
// QUANTUM_FLOW_TEST_DATABASE_URL rather than one this package started.
func (c *Cluster) External() bool { return c.external }

// Dir returns the directory holding the data directory, socket and server
// log of a cluster this package started ("" for an external one).
func (c *Cluster) Dir() string { return c.dir }

// LogFile returns the path of the server log ("" for an external server).
func (c *Cluster) LogFile() string {
	if c.external {
		return ""
	}
	return filepath.Join(c.dir, "postgres.log")
}

// NewDatabase creates an empty database and returns its URL.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("qf_test_%d_%d", os.Getpid(), c.dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	u, err := url.Parse(c.adminURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: parse admin URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// DropDatabase drops a database made by NewDatabase, disconnecting its
// sessions.
func (c *Cluster) DropDatabase(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("pgtest: parse URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// committed data is kept) and removes its directory. It does nothing for
// an external server. It is idempotent.
func (c *Cluster) Stop() error {
	if c.external {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	err := c.shutdown()
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Restart stops the server (fast shutdown) and starts it again on the same
// port and data. Open connections break; clients must reconnect.
func (c *Cluster) Restart(ctx context.Context) error { return c.StopFor(ctx, 0) }

// Kill stops the server with SIGKILL to the postmaster, as a crash would,
// and starts it again, which runs crash recovery. Committed data survives.
func (c *Cluster) Kill(ctx context.Context) error {
	if c.external {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("pgtest: kill of a stopped cluster")
	}
	if c.proc != nil {
		_ = c.proc.Signal(syscall.SIGKILL)
		<-c.exited
		c.proc = nil
	}
	// Backends notice the postmaster's death and exit; the new postmaster
	// refuses to start while any of them still holds shared memory, so
	// retry for a while.
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err = c.startLocked(ctx); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shutdown stops the postmaster by its pid. Callers hold c.mu.
func (c *Cluster) shutdown() error {
	if c.proc == nil {
		return nil
	}
	defer func() { c.proc = nil }()
	// SIGINT is PostgreSQL's fast shutdown.
	_ = c.proc.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil
	case <-time.After(60 * time.Second):
	}
	// SIGQUIT is immediate shutdown (crash recovery on next start).
	_ = c.proc.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = c.proc.Signal(syscall.SIGKILL)
	<-c.exited
	return errors.New("pgtest: postgres did not shut down; killed")
}

func (c *Cluster) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", filepath.Join(c.dir, "data"),
		"-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale",
		// Only initdb's own final sync is skipped; the server runs with
		// fsync on.
		"--no-sync")
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: initdb: %v\n%s", ErrUnavailable, err, out)
	}
	return nil
}

// serverSettings are the settings of a throwaway server: durable (fsync,
// synchronous commit), room for many parallel tests.
func (c *Cluster) serverSettings() []string {
	settings := []string{
		"port=" + strconv.Itoa(c.port),
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + c.dir,
		"max_connections=500", // the conformance suites open 50 backends at once, two suites in parallel
		"fsync=on",
		"synchronous_commit=on",
		"full_page_writes=on",
		"shared_buffers=128MB",
		"max_wal_size=1GB",
		"log_min_messages=warning",
		"log_line_prefix=%m [%p] ",
	}
	var args []string
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	return args
}

func (c *Cluster) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startLocked(ctx)
}

// startLocked starts the postmaster as a child and waits until it accepts
// connections. Callers hold c.mu.
func (c *Cluster) startLocked(ctx context.Context) error {
	logf, err := os.OpenFile(c.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: server log: %w", err)
	}
	args := append([]string{"-D", filepath.Join(c.dir, "data")}, c.serverSettings()...)
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	cmd.Dir = c.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		// Immediate shutdown when this process dies, so a killed test
		// binary does not leave a server running.
		Pdeathsig: syscall.SIGQUIT,
		// Own process group: ^C in a terminal reaches the test binary,
		// which shuts the server down in order.
		Setpgid: true,
	}
	if err := Spawn(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("%w: start postgres: %v", ErrUnavailable, err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.proc, c.exited = cmd.Process, exited
	c.adminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)

	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			c.proc = nil
			return fmt.Errorf("%w: postgres exited during startup:\n%s", ErrUnavailable, c.logTail(20))
		case <-ctx.Done():
			c.killLocked()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.killLocked()
			return fmt.Errorf("%w: postgres did not accept connections within 60s: %v\n%s", ErrUnavailable, err, c.logTail(20))
		}
	}
}

func (c *Cluster) killLocked() {
	if c.proc != nil {
		_ = c.proc.Signal(syscall.SIGQUIT)
		<-c.exited
		c.proc = nil
	}
}

func (c *Cluster) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

func (c *Cluster) logTail(n int) string {
	f, err := os.Open(c.LogFile())
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// spawnReq asks the spawner goroutine to start a process.
type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

// Spawn starts cmd from one OS thread that never exits. Pdeathsig fires
// when the thread that forked the child exits, not the process; Go may
// retire threads (a goroutine that ends locked to its thread takes the
// thread with it), so the fork happens on a thread locked for good. The
// e2e test and the reliability harness start their processes with it too.
func Spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnCh <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// findBinDir returns the directory of the newest PostgreSQL server binaries.
func findBinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w: %s=%s has no initdb", ErrUnavailable, EnvBinDir, d)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) > 0 {
		version := func(p string) float64 {
			v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
			return v
		}
		slices.SortFunc(matches, func(a, b string) int {
			switch va, vb := version(a), version(b); {
			case va < vb:
				return -1
			case va > vb:
				return 1
			}
			return 0
		})
		return filepath.Dir(matches[len(matches)-1]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		d := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: no PostgreSQL server binaries (looked in /usr/lib/postgresql/*/bin and PATH; "+
		"install Debian's postgresql package, or set %s)", ErrUnavailable, EnvDatabaseURL)
}

// tempRoot returns the directory to make the cluster's directory in: the
// usual temp dir, unless the server runs as another user (postgres) who
// could not reach into it (a TMPDIR under /root, say); then /tmp.
func tempRoot(otherUser bool) string {
	root := os.TempDir()
	if !otherUser {
		return root
	}
	for d := root; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return root
		}
	}
}

// removeStaleDirs removes the directories of clusters whose test process
// died without stopping them (the server itself died with it, see
// Pdeathsig). The owner's pid is in the directory name.
func removeStaleDirs() {
	var dirs []string
	for _, root := range []string{os.TempDir(), "/tmp"} {
		m, _ := filepath.Glob(filepath.Join(root, "qf-pgtest-*-*"))
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		parts := strings.Split(filepath.Base(d), "-")
		if len(parts) != 4 {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
