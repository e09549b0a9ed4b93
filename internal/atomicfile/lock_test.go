//go:build unix

package atomicfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scores.json")
	release, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another mope is writing") {
		t.Fatalf("second lock in the same process: %v", err)
	}
	release()
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
	again, err := Lock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

// TestLockAcrossProcesses holds the lock in a child process (flock(1)
// semantics are per open file, so a child is the real case).
func TestLockAcrossProcesses(t *testing.T) {
	if os.Getenv("MOPECLIP_LOCK_CHILD") != "" {
		release, err := Lock(os.Getenv("MOPECLIP_LOCK_CHILD"))
		if err != nil {
			os.Exit(3)
		}
		defer release()
		os.Stdout.WriteString("locked\n")
		buf := make([]byte, 1)
		os.Stdin.Read(buf) // hold until the parent closes stdin
		return
	}
	path := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "-test.run=TestLockAcrossProcesses")
	cmd.Env = append(os.Environ(), "MOPECLIP_LOCK_CHILD="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Errorf("lock held by another process was granted: %v", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	release, err := Lock(path)
	if err != nil {
		t.Fatalf("after the child exited: %v", err)
	}
	release()
}
