// Package docs holds QuantumFlow's operator documentation (the Markdown
// files in this directory) and the test that keeps it true: every shell
// block marked runnable is run against a throwaway backend, the generated
// tables are compared with the code that generates them, and every
// relative link is followed. See docs_test.go for the markers.
package docs
