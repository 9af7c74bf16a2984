//go:build !unix

package router

// processAlive cannot tell on this system: the process is taken to run.
func processAlive(int) bool { return true }
