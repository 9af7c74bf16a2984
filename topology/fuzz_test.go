package topology

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadYAML: any file either loads into a configuration that
// validates, or is refused with ErrInvalidConfig.
func FuzzLoadYAML(f *testing.F) {
	for _, name := range []string{"seed.yaml", "example.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "profile: large\n", "singularity:\n  producers: 3\n", "profile: [\n", "\x00\xff",
		"centralcloud:\n  consumers:\n    proposals_for_consensus:\n      workers: 99999999999999999999\n",
		"singularity:\n  instance_ttl: -1h\n", "a: &a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	none := func(string) (string, bool) { return "", false }
	// One file per fuzzing process, written again for each input (a
	// process runs its inputs one at a time).
	path := filepath.Join(f.TempDir(), "quantumflow.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, svc := range []string{Singularity, CentralCloud} {
			cfg, err := Load(LoadOptions{Service: svc, Path: path, LookupEnv: none})
			if err != nil {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("%s: refused without ErrInvalidConfig: %v", svc, err)
				}
				continue
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: loaded a configuration that does not validate: %v", svc, err)
			}
		}
	})
}
