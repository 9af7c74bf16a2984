package postgres_test

// runChild runs this test binary as a helper process when the
// environment asks for it, and reports whether it did.
func runChild() bool { return false }
