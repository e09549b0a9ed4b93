// Package layering holds the test of the module's import graph: every
// package may import only packages below it in Order (the order of the
// layout table in README.md and docs/architecture.md). It has no code.
package layering
