//go:build unix

package docs

// The docs' code blocks are marked in their fence's info string:
//
//	```sh runnable                   run with bash in a clean environment (no QUANTUM_FLOW_*)
//	```sh runnable backend=postgres  QUANTUM_FLOW_MESSAGING_URL is the document's throwaway database
//	```sh runnable backend=mem       QUANTUM_FLOW_MESSAGING_URL=mem://docs (one process only)
//	```sh runnable backend=nats      QUANTUM_FLOW_MESSAGING_URL is the document's embedded NATS server
//	```sh runnable exit=2            the block must exit with status 2 (default 0)
//	```sh runnable needs=pg_dump     commands the block needs besides quantumflow and bash
//	```sql runnable                  run with psql against the document's throwaway database
//	```sh norun                      shown, never run (a long-running server, the nats CLI, ...)
//
// Every sh, bash, shell and sql block carries runnable or norun, so that
// no command is left unchecked by oversight. The blocks of one document
// run in order, in one working directory and on one database or server,
// so a later block sees what an earlier one did (the directory links to
// the checkout's deploy/ and topology/, read only by convention); each
// runs under `set -euo pipefail` with the quantumflow binary built from
// this checkout first on PATH.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/quantumflow/backends/nats/embedded"
	"github.com/quantumflow/quantumflow/internal/pgtest"
	"github.com/quantumflow/quantumflow/topology"
)

var update = flag.Bool("update", false, "rewrite the generated tables in docs/*.md")

func TestMain(m *testing.M) { pgtest.Main(m) }

// block is one fenced code block of a document.
type block struct {
	file  string
	line  int // of the opening fence
	lang  string
	attrs map[string]string // runnable, norun, backend, exit, needs
	body  string
}

func (b block) name() string { return fmt.Sprintf("%s:%d", filepath.Base(b.file), b.line) }

// shellLangs are the languages whose blocks must say runnable or norun.
var shellLangs = []string{"sh", "bash", "shell", "sql"}

var fenceRE = regexp.MustCompile("^(```+|~~~+)(.*)$")

// parseBlocks returns the fenced code blocks of a Markdown file.
func parseBlocks(t *testing.T, file string) []block {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var (
		out   []block
		cur   *block
		fence string
		body  strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			m := fenceRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			fence = m[1]
			words := strings.Fields(m[2])
			cur = &block{file: file, line: n, attrs: map[string]string{}}
			if len(words) > 0 {
				cur.lang = words[0]
				for _, w := range words[1:] {
					k, v, _ := strings.Cut(w, "=")
					cur.attrs[k] = v
				}
			}
			body.Reset()
			continue
		}
		if strings.HasPrefix(line, fence) && strings.TrimSpace(strings.TrimLeft(line, fence[:1])) == "" {
			cur.body = body.String()
			out = append(out, *cur)
			cur = nil
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "%s: unclosed code block", file)
	return out
}

// docFiles returns the Markdown files of this directory.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	slices.Sort(files)
	return files
}

// TestBlocksMarked checks that every shell and SQL block says whether it
// runs, with attributes the runner knows.
func TestBlocksMarked(t *testing.T) {
	t.Parallel()
	known := []string{"runnable", "norun", "backend", "exit", "needs"}
	for _, file := range docFiles(t) {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		for n, line := range strings.Split(string(raw), "\n") {
			trimmed := strings.TrimLeft(line, " \t")
			indented := trimmed != line && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"))
			require.False(t, indented, "%s:%d: an indented code fence (the runner reads fences at the start of a line only)", file, n+1)
		}
		for _, b := range parseBlocks(t, file) {
			if !slices.Contains(shellLangs, b.lang) {
				continue
			}
			_, run := b.attrs["runnable"]
			_, norun := b.attrs["norun"]
			require.True(t, run != norun, "%s: a %s block must be marked either runnable or norun", b.name(), b.lang)
			for k := range b.attrs {
				require.Contains(t, known, k, "%s: unknown attribute %q", b.name(), k)
			}
			if be, ok := b.attrs["backend"]; ok {
				require.Contains(t, []string{"mem", "postgres", "nats"}, be, "%s: backend", b.name())
			}
			if e, ok := b.attrs["exit"]; ok {
				_, err := strconv.Atoi(e)
				require.NoError(t, err, "%s: exit", b.name())
			}
		}
	}
}

// TestRunnableBlocks runs every runnable block of every document, in
// order, and checks its exit status.
func TestRunnableBlocks(t *testing.T) {
	type doc struct {
		file   string
		blocks []block
	}
	var docs []doc
	for _, file := range docFiles(t) {
		var bs []block
		for _, b := range parseBlocks(t, file) {
			if _, ok := b.attrs["runnable"]; ok && slices.Contains(shellLangs, b.lang) {
				bs = append(bs, b)
			}
		}
		if len(bs) > 0 {
			docs = append(docs, doc{file, bs})
		}
	}
	require.NotEmpty(t, docs, "no runnable blocks")

	binDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "quantumflow"), "github.com/quantumflow/quantumflow/cmd/quantumflow")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	path := binDir + string(os.PathListSeparator) + os.Getenv("PATH")
	if dir := pgClientDir(); dir != "" {
		path += string(os.PathListSeparator) + dir
	}

	for _, d := range docs {
		t.Run(d.file, func(t *testing.T) {
			r := &docRunner{t: t, dir: t.TempDir(), path: path}
			for _, d := range checkoutDirs {
				abs, err := filepath.Abs(filepath.Join("..", d))
				require.NoError(t, err)
				require.NoError(t, os.Symlink(abs, filepath.Join(r.dir, d)))
			}
			for _, b := range d.blocks {
				if t.Failed() {
					return // later blocks build on earlier ones
				}
				t.Run(strconv.Itoa(b.line), func(t *testing.T) { r.run(t, b) })
			}
		})
	}
}

// checkoutDirs are the checkout's directories a block's working
// directory links to, so that blocks read the repository's files (the
// seed's config, the alert rules) by the paths a reader in a checkout
// uses, while what they write stays in the temporary directory.
var checkoutDirs = []string{"deploy", "topology"}

// docRunner runs one document's blocks, holding its working directory
// and, once a block asks for one, its database and NATS server.
type docRunner struct {
	t    *testing.T // the document's test: cleanups last as long as it
	dir  string
	path string

	pgURL   string
	natsURL string
}

func (r *docRunner) backendURL(t *testing.T, backend string) string {
	switch backend {
	case "mem":
		return "mem://docs"
	case "postgres":
		if r.pgURL == "" {
			r.pgURL = pgtest.Database(r.t)
		}
		return r.pgURL
	case "nats":
		if r.natsURL == "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			srv, err := embedded.Start(ctx, embedded.Options{})
			require.NoError(t, err)
			r.t.Cleanup(func() { _ = srv.Close() })
			r.natsURL = srv.ClientURL()
		}
		return r.natsURL
	}
	return ""
}

func (r *docRunner) run(t *testing.T, b block) {
	backend := b.attrs["backend"]
	if b.lang == "sql" {
		backend = "postgres"
	}
	needs := []string{"bash"}
	if b.attrs["needs"] != "" {
		needs = append(needs, strings.Split(b.attrs["needs"], ",")...)
	}
	if b.lang == "sql" {
		needs = append(needs, "psql")
	}
	for _, n := range needs {
		if _, err := lookPath(n, r.path); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s needs %s, which is not installed: %v", b.name(), n, err)
			}
			t.Skipf("%s needs %s, which is not installed", b.name(), n)
		}
	}

	env := cleanEnv(r.path)
	if backend != "" {
		env = append(env, topology.EnvMessagingURL+"="+r.backendURL(t, backend))
	}

	script := "set -euo pipefail\n" + b.body
	if b.lang == "sql" {
		f := filepath.Join(t.TempDir(), "block.sql")
		require.NoError(t, os.WriteFile(f, []byte(b.body), 0o644))
		script = fmt.Sprintf("set -euo pipefail\npsql -X -q -v ON_ERROR_STOP=1 -f %q \"$%s\"\n", f, topology.EnvMessagingURL)
	}

	want := 0
	if e, ok := b.attrs["exit"]; ok {
		want, _ = strconv.Atoi(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = r.dir
	cmd.Env = env
	// The block's own background jobs die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	got := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		got = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v\n%s", b.name(), err, out)
	}
	require.Equal(t, want, got, "%s: exit status\n--- block:\n%s--- output:\n%s", b.name(), b.body, out)
	t.Logf("%s:\n%s", b.name(), out)
}

// cleanEnv is the test's environment without QuantumFlow's and
// OpenTelemetry's variables, with path as PATH.
func cleanEnv(path string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "QUANTUM_FLOW_") || strings.HasPrefix(k, "OTEL_") || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+path)
}

// lookPath finds a command on path.
func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// pgClientDir is the newest installed PostgreSQL's bin directory, where
// Debian keeps psql, pg_dump and pg_restore when they are not on PATH.
func pgClientDir() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(matches) == 0 {
		return ""
	}
	slices.SortFunc(matches, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return va - vb
	})
	return filepath.Dir(matches[len(matches)-1])
}

// generated are the tables docs hold between markers, and the code that
// writes them.
var generated = []struct {
	file, name string
	render     func() string
}{
	{"configuration.md", "env-table", topology.EnvTableMarkdown},
	{"configuration.md", "profile-table", profileTableMarkdown},
	{"scaling.md", "profile-table", profileTableMarkdown},
}

// TestGeneratedTables keeps the tables generated from the code in step
// with it. Run with -update to rewrite them.
func TestGeneratedTables(t *testing.T) {
	var mu sync.Mutex // -update rewrites files two entries share
	for _, g := range generated {
		t.Run(g.file+"/"+g.name, func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			raw, err := os.ReadFile(g.file)
			require.NoError(t, err)
			text := string(raw)
			begin, end := "<!-- "+g.name+":begin", "<!-- "+g.name+":end -->"
			i := strings.Index(text, begin)
			require.GreaterOrEqual(t, i, 0, "%s has no %q marker", g.file, begin)
			i += strings.Index(text[i:], "\n") + 1
			j := strings.Index(text, end)
			require.GreaterOrEqual(t, j, i, "%s has no %q marker after the begin marker", g.file, end)
			want := g.render()
			if !strings.HasSuffix(want, "\n") {
				want += "\n"
			}
			if *update {
				require.NoError(t, os.WriteFile(g.file, []byte(text[:i]+want+text[j:]), 0o644))
				return
			}
			require.Equal(t, want, text[i:j], "%s: the %s is stale: go test ./docs -run TestGeneratedTables -update", g.file, g.name)
		})
	}
}

// profileTableMarkdown renders every entry's worker count under the
// seed's defaults and each scaling profile.
func profileTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| service | entry | queue | seed |")
	for _, p := range topology.ProfileNames() {
		b.WriteString(" " + p + " |")
	}
	b.WriteString("\n|---|---|---|---|")
	for range topology.ProfileNames() {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, svc := range topology.Services() {
		cfg, _ := topology.Default(svc)
		row := func(side, key, queue string, workers int) {
			fmt.Fprintf(&b, "| %s | %s.%s | `%s` | %d |", svc, side, key, queue, workers)
			for _, p := range topology.ProfileNames() {
				pw, _ := topology.ProfileWorkers(svc, p)
				n, ok := pw[queue]
				if !ok {
					n = workers
				}
				fmt.Fprintf(&b, " %d |", n)
			}
			b.WriteString("\n")
		}
		for _, p := range cfg.Producers {
			row("producers", p.Key, p.Queue, p.Workers)
		}
		for _, c := range cfg.Consumers {
			row("consumers", c.Key, c.Queue, c.Workers)
		}
	}
	return b.String()
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestLinks follows every relative link of the docs and of the README's
// links into them: the file must exist, and an anchor into a Markdown
// file must name one of its headings.
func TestLinks(t *testing.T) {
	t.Parallel()
	files := append(docFiles(t), "../README.md")
	for _, file := range files {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		text := stripCode(string(raw))
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
			}
			_, err := os.Stat(dest)
			require.NoError(t, err, "%s: link %s", file, target)
			if anchor != "" && strings.HasSuffix(dest, ".md") {
				require.Contains(t, anchors(t, dest), anchor, "%s: link %s: no such heading", file, target)
			}
		}
	}
}

// TestREADMELinksDocs checks that the README's Documentation section
// links to every document.
func TestREADMELinksDocs(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	i := strings.Index(readme, "\n## Documentation\n")
	require.GreaterOrEqual(t, i, 0, "README has no ## Documentation section")
	section := readme[i+1:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	for _, f := range docFiles(t) {
		require.Contains(t, section, "(docs/"+f, "README's Documentation section does not link docs/%s", f)
	}
}

// stripCode removes fenced code blocks, whose text is not Markdown.
func stripCode(text string) string {
	var b strings.Builder
	in := ""
	for _, line := range strings.Split(text, "\n") {
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case in == "":
				in = m[1]
				continue
			case strings.HasPrefix(line, in) && strings.TrimSpace(m[2]) == "":
				in = ""
				continue
			}
		}
		if in == "" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// anchors returns the heading anchors of a Markdown file, as GitHub
// makes them.
func anchors(t *testing.T, file string) []string {
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var out []string
	seen := map[string]int{}
	for _, line := range strings.Split(stripCode(string(raw)), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := slug(h)
		if n := seen[a]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", a, n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}

// slug is GitHub's heading anchor: lower case, letters, digits, '-' and
// '_' kept, spaces as '-', everything else dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
