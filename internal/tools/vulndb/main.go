// Command vulndb builds an offline copy of the Go vulnerability database,
// for govulncheck -db file://DIR, from the golang.org/x/vulndb module at a
// pinned version.
//
//	go run ./internal/tools/vulndb -version v0.0.0-20261105234957-e22db6528018 -out DIR
//
// govulncheck reads vuln.go.dev by default, which the CI machine (loopback
// and the Go module proxy only) cannot reach. The proxy does serve
// golang.org/x/vulndb, the repository the database is generated from: its
// data/osv holds every entry as an OSV file, the same entries vuln.go.dev
// serves. The command fetches the module with `go mod download`, then
// writes the entries in the layout govulncheck's client reads from a
// directory (the v1 API of https://go.dev/security/vuln/database, as
// files; golang.org/x/vuln/internal/client):
//
//	DIR/index/db.json       {"modified": T}, T the pinned commit's time
//	DIR/index/modules.json  [{"path": P, "vulns": [{"id", "modified", "fixed"}]}]
//	DIR/ID/GO-YYYY-NNNN.json  each entry as the module has it
//
// The database is as fresh as the pin: bump -version (scripts/vulncheck.sh)
// to a newer pseudo-version of golang.org/x/vulndb to take newer entries.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// modulePath is the module the database comes from.
const modulePath = "golang.org/x/vulndb"

func main() {
	version := flag.String("version", "", "version of "+modulePath+" to build the database from (required)")
	out := flag.String("out", "", "directory to write the database to (required; created, and must be empty if it exists)")
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

// run downloads the module at version and writes its database into out.
func run(ctx context.Context, version, out string) error {
	// The commit time of a pseudo-version is when the pinned database was
	// taken: the freshness govulncheck reports. A tagged version (the
	// module has none so far) has no such time; the entries' own dates
	// stand in then.
	var taken time.Time
	if module.IsPseudoVersion(version) {
		t, err := module.PseudoVersionTime(version)
		if err != nil {
			return err
		}
		taken = t
	}
	dir, err := download(ctx, modulePath, version)
	if err != nil {
		return err
	}
	n, err := build(filepath.Join(dir, "data", "osv"), out, taken)
	if err != nil {
		return err
	}
	// Said where the check's output starts: a stale pin shows.
	date := "undated"
	if !taken.IsZero() {
		date = "as of " + taken.Format(time.DateOnly)
	}
	fmt.Fprintf(os.Stderr, "vulndb: %d entries of %s@%s (%s) in %s\n", n, modulePath, version, date, out)
	return nil
}

// download fetches path@version into the module cache through the go
// command (and so GOPROXY) and returns its directory there.
func download(ctx context.Context, path, version string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", path+"@"+version)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil && runErr == nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", path, version, err)
	}
	switch {
	case info.Error != "":
		return "", fmt.Errorf("go mod download %s@%s: %s", path, version, info.Error)
	case runErr != nil:
		return "", fmt.Errorf("go mod download %s@%s: %w: %s", path, version, runErr, strings.TrimSpace(stderr.String()))
	case info.Dir == "":
		return "", fmt.Errorf("go mod download %s@%s: no directory in its answer", path, version)
	}
	return info.Dir, nil
}

// entry is the part of an OSV entry the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

// osvRange is an OSV range: events, each an introduced or a fixed version
// (Go semantic versions without the "v").
type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced"`
		Fixed      string `json:"fixed"`
	} `json:"events"`
}

// moduleMeta and moduleVuln are the records of index/modules.json.
type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	// Fixed lets the client skip an entry for a module version at or
	// past it without reading the entry: it must never be later than
	// what the entry says, or a vulnerable version would be skipped.
	Fixed string `json:"fixed,omitempty"`
}

// build writes the database of the OSV files in osvDir into out, and
// returns how many entries it wrote. The index's modified time is the
// latest of taken and the entries' own.
func build(osvDir, out string, taken time.Time) (int, error) {
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no OSV entries in %s", osvDir)
	}
	// An older database left in out would be mixed with this one.
	if des, err := os.ReadDir(out); err == nil && len(des) > 0 {
		return 0, fmt.Errorf("%s is not empty", out)
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return 0, err
	}
	modified := taken
	modules := map[string]*moduleMeta{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" || filepath.Base(f) != e.ID+".json" {
			return 0, fmt.Errorf("%s: entry id %q does not match its file name", f, e.ID)
		}
		if e.Modified.After(modified) {
			modified = e.Modified
		}
		// One record per affected module, as the client's own index of
		// a directory of entries has it.
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: nonSupersededFix(a.Ranges)})
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return 0, err
		}
	}
	index := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		slices.SortStableFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		index = append(index, m)
	}
	slices.SortFunc(index, func(a, b *moduleMeta) int { return strings.Compare(a.Path, b.Path) })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), index); err != nil {
		return 0, err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), struct {
		Modified time.Time `json:"modified"`
	}{modified.UTC()}); err != nil {
		return 0, err
	}
	return len(files), nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// nonSupersededFix returns the latest fixed version of ranges, or "" if
// the vulnerability was introduced again after it (or was never fixed).
// It is golang.org/x/vuln/internal/semver.NonSupersededFix, which the
// client's own index uses, written out here since that package is
// internal to x/vuln.
func nonSupersededFix(ranges []osvRange) string {
	var latest string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// less compares OSV versions as the client does: with a "v" prefix (an
// empty or invalid version is less than every valid one).
func less(a, b string) bool {
	return semver.Compare(canonical(a), canonical(b)) < 0
}

// canonical prefixes an OSV version ("1.2.3", or "go1.2.3" in older
// entries) with "v", as golang.org/x/mod/semver wants.
func canonical(v string) string {
	v = strings.TrimPrefix(v, "v")
	v = strings.TrimPrefix(v, "go")
	return "v" + v
}
