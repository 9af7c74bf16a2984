//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/quantumflow/quantumflow/internal/journal"
)

// journals reads the services' journals as they grow: each read takes only
// the lines completed since the last one.
type journals struct {
	files []*journalFile
}

type journalFile struct {
	path    string
	off     int64
	entries []journal.Entry
	cut     int
}

func newJournals(dir string, names ...string) *journals {
	j := &journals{}
	for _, n := range names {
		j.files = append(j.files, &journalFile{path: filepath.Join(dir, n+".jsonl")})
	}
	return j
}

// path returns the journal file of the service process called name.
func (j *journals) path(name string) string {
	for _, f := range j.files {
		if filepath.Base(f.path) == name+".jsonl" {
			return f.path
		}
	}
	panic("no journal for " + name)
}

// read returns every entry so far and how many lines were cut short.
func (j *journals) read() ([]journal.Entry, int, error) {
	var all []journal.Entry
	cut := 0
	for _, f := range j.files {
		if err := f.refresh(); err != nil {
			return nil, 0, err
		}
		all = append(all, f.entries...)
		cut += f.cut
	}
	return all, cut, nil
}

// count returns how many entries of event there are so far.
func (j *journals) count(event string) (int, error) {
	entries, _, err := j.read()
	n := 0
	for _, e := range entries {
		if e.Event == event {
			n++
		}
	}
	return n, err
}

func (f *journalFile) refresh() error {
	file, err := os.Open(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer file.Close()
	b, err := io.ReadAll(io.NewSectionReader(file, f.off, 1<<62))
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	// A line being written now is taken next time.
	end := bytes.LastIndexByte(b, '\n') + 1
	entries, cut, err := journal.Read(bytes.NewReader(b[:end]))
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.entries = append(f.entries, entries...)
	f.cut += cut
	f.off += int64(end)
	return nil
}
