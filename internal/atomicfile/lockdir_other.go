//go:build !unix

package atomicfile

// lockDir is a no-op where flock is not available: renames stay atomic,
// but concurrent writers to one directory are not serialised.
func lockDir(dir string) (func(), error) { return func() {}, nil }
