package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBuildWritesTheClientsLayout(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "db")
	taken := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	n, err := build("testdata/osv", out, taken)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// The index the client reads: one record per affected module, the
	// fix that lets it skip an entry only where no later introduction
	// supersedes it, versions compared as versions.
	b, err := os.ReadFile(filepath.Join(out, "index", "modules.json"))
	require.NoError(t, err)
	require.JSONEq(t, `[
		{"path": "example.com/a", "vulns": [
			{"id": "GO-2099-0001", "modified": "0001-01-01T00:00:00Z", "fixed": "1.3.1"},
			{"id": "GO-2099-0002", "modified": "2099-03-04T05:06:07Z"}
		]},
		{"path": "example.com/b", "vulns": [
			{"id": "GO-2099-0001", "modified": "0001-01-01T00:00:00Z", "fixed": "0.10.0"}
		]},
		{"path": "stdlib", "vulns": [
			{"id": "GO-2099-0003", "modified": "0001-01-01T00:00:00Z", "fixed": "1.10.2"}
		]}
	]`, string(b))

	// The database is as new as its newest entry or the pin, whichever
	// is later.
	b, err = os.ReadFile(filepath.Join(out, "index", "db.json"))
	require.NoError(t, err)
	var db struct{ Modified time.Time }
	require.NoError(t, json.Unmarshal(b, &db))
	require.Equal(t, time.Date(2099, 3, 4, 5, 6, 7, 0, time.UTC), db.Modified)

	// Entries are served as the module has them.
	for _, id := range []string{"GO-2099-0001", "GO-2099-0002", "GO-2099-0003"} {
		want, err := os.ReadFile(filepath.Join("testdata", "osv", id+".json"))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(out, "ID", id+".json"))
		require.NoError(t, err)
		require.Equal(t, want, got, id)
	}
}

func TestBuildRefusesWhatWouldMislead(t *testing.T) {
	t.Parallel()
	t.Run("a directory with no entries", func(t *testing.T) {
		_, err := build(t.TempDir(), filepath.Join(t.TempDir(), "db"), time.Time{})
		require.ErrorContains(t, err, "no OSV entries")
	})
	t.Run("an entry under another id's name", func(t *testing.T) {
		src := t.TempDir()
		b, err := os.ReadFile(filepath.Join("testdata", "osv", "GO-2099-0001.json"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(src, "GO-2099-0009.json"), b, 0o644))
		_, err = build(src, filepath.Join(t.TempDir(), "db"), time.Time{})
		require.ErrorContains(t, err, "does not match its file name")
	})
	t.Run("an older database in the output directory", func(t *testing.T) {
		out := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(out, "stale"), nil, 0o644))
		_, err := build("testdata/osv", out, time.Time{})
		require.ErrorContains(t, err, "not empty")
	})
}

func TestNonSupersededFix(t *testing.T) {
	t.Parallel()
	type ev struct{ Introduced, Fixed string }
	ranges := func(typ string, evs ...ev) []osvRange {
		r := osvRange{Type: typ}
		for _, e := range evs {
			r.Events = append(r.Events, struct {
				Introduced string `json:"introduced"`
				Fixed      string `json:"fixed"`
			}{e.Introduced, e.Fixed})
		}
		return []osvRange{r}
	}
	for _, tc := range []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"never fixed", ranges("SEMVER", ev{Introduced: "0"}), ""},
		{"fixed", ranges("SEMVER", ev{Introduced: "0"}, ev{Fixed: "1.2.3"}), "1.2.3"},
		{"latest of two fixes", ranges("SEMVER", ev{Introduced: "0"}, ev{Fixed: "1.9.10"}, ev{Introduced: "1.10.0-0"}, ev{Fixed: "1.10.2"}), "1.10.2"},
		{"introduced again", ranges("SEMVER", ev{Introduced: "0"}, ev{Fixed: "1.0.0"}, ev{Introduced: "1.1.0"}), ""},
		{"go-prefixed versions", ranges("SEMVER", ev{Introduced: "0"}, ev{Fixed: "go1.20.1"}), "go1.20.1"},
		{"not semver", ranges("GIT", ev{Introduced: "0"}, ev{Fixed: "abc123"}), ""},
	} {
		require.Equal(t, tc.want, nonSupersededFix(tc.ranges), tc.name)
	}
}
