package bench

import (
	// The harness measures every backend by URL, as a user opens them.
	_ "github.com/quantumflow/quantumflow/backends/mem"
	_ "github.com/quantumflow/quantumflow/backends/nats"
	_ "github.com/quantumflow/quantumflow/backends/postgres"
)
