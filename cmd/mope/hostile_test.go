package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/internal/world"
	"github.com/mopeclip/mopeclip/train"
)

// Hostile input and accidents (issue 21 item 5): each case must end with a
// clear message and the right exit status, and destroy nothing.

func TestRefuseOverwritingTheSource(t *testing.T) {
	model := tinyModelDir(t)
	scores := filepath.Join(t.TempDir(), "s.json")
	mustRun(t, "score", "--model", model, "--metric", "magnitude", "--modules", "heads", "--out", scores, "--quiet")
	before, _ := os.ReadFile(filepath.Join(model, "model.safetensors"))
	for _, args := range [][]string{
		{"prune", "--model", model, "--scores", scores, "--width", "0.5", "--out", model, "--quiet"},
		{"prune", "--model", model, "--scores", scores, "--width", "0.5", "--out", model + "/.", "--quiet"},
		{"distill", "--teacher", model, "--student", model, "--out", model, "--steps", "1"},
		{"pipeline", "--teacher", model, "--out", model, "--metric", "magnitude"},
	} {
		code, _, errs := runMope(args...)
		if code != 2 || !strings.Contains(errs, "would destroy the source") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(model, "model.safetensors")); string(after) != string(before) {
		t.Fatal("the source model changed")
	}
	// Another --out works.
	out := filepath.Join(t.TempDir(), "copy")
	mustRun(t, "prune", "--model", model, "--scores", scores, "--width", "0.5", "--out", out, "--quiet")
}

func TestConcurrentWritersAreLocked(t *testing.T) {
	model := tinyModelDir(t)
	tmp := t.TempDir()
	scores := filepath.Join(tmp, "s.json")
	out := filepath.Join(tmp, "pruned")
	// Another process holds the outputs (the lock is per open file, so a
	// lock taken here excludes the command as another process's would).
	for _, c := range []struct {
		target string
		args   []string
	}{
		{scores, []string{"score", "--model", model, "--metric", "magnitude", "--modules", "heads", "--out", scores, "--quiet"}},
		{out, []string{"prune", "--model", model, "--scores", scores, "--width", "0.5", "--out", out, "--quiet"}},
		{filepath.Join(tmp, "run"), []string{"pretrain", "--preset", world.TinyPreset, "--steps", "2", "--batch", "8", "--train-n", "8",
			"--val-n", "0", "--quiet", "--out", filepath.Join(tmp, "run")}},
	} {
		release, err := atomicfile.Lock(c.target)
		if err != nil {
			t.Fatal(err)
		}
		code, _, errs := runMope(c.args...)
		release()
		if code != 1 || !strings.Contains(errs, "another mope is writing") {
			t.Errorf("%s while locked: exit %d, stderr %q", c.args[0], code, errs)
		}
		mustRun(t, c.args...) // and it works once the other run is gone
		if _, err := os.Stat(c.target + ".lock"); !os.IsNotExist(err) {
			t.Errorf("%s left its lock file: %v", c.args[0], err)
		}
	}
}

func TestScoreOutCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	for _, c := range []struct{ out, want string }{
		{dir, "is a directory"},
		{filepath.Join(dir, "nowhere", "deeper", "s.json"), "no such file"},
		{filepath.Join(ro, "s.json"), "cannot write"},
	} {
		if c.want == "cannot write" && os.Getuid() == 0 {
			continue // root writes anywhere
		}
		// The model does not exist either: the --out error must come first.
		code, _, errs := runMope("score", "--model", filepath.Join(dir, "no-model"), "--metric", "magnitude", "--out", c.out)
		if code != 1 || !strings.Contains(errs, c.want) || strings.Contains(errs, "no-model") {
			t.Errorf("--out %s: exit %d, stderr %q (want %q before any model error)", c.out, code, errs, c.want)
		}
	}
}

func TestPretrainRefusesToDiscardACheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"pretrain", "--preset", world.TinyPreset, "--steps", "4", "--batch", "8", "--train-n", "16", "--val-n", "0", "--out", dir}
	if code, _, errs := runMope(append(args, "--stop-at", "2")...); code != 0 || !strings.Contains(errs, "continue with") {
		t.Fatalf("--stop-at: exit %d: %s", code, errs)
	}
	ck := filepath.Join(dir, "checkpoint", train.CheckpointFile)
	before, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := runMope(args...)
	if code != 1 || !strings.Contains(errs, "--resume") || !strings.Contains(errs, "--force") {
		t.Fatalf("no --resume: exit %d: %s", code, errs)
	}
	if after, _ := os.ReadFile(ck); string(after) != string(before) {
		t.Fatal("the checkpoint changed")
	}
	mopeRun(t, append(args, "--force")...)
}

func TestDivergedRunStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, errs := runMope("pretrain", "--preset", world.TinyPreset, "--steps", "40", "--batch", "8", "--train-n", "16",
		"--val-n", "0", "--warmup", "0", "--lr", "1e30", "--out", dir)
	if code != 1 || !strings.Contains(errs, "not finite") || !strings.Contains(errs, "lower the learning rate") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); !os.IsNotExist(err) {
		t.Errorf("a diverged model was written: %v", err)
	}
}

func TestResourceBombsBounded(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pretrain", "--batch", "100000000", "--out", filepath.Join(dir, "p")}, 2, "--batch 100000000 is more than"},
		{[]string{"pretrain", "--preset", world.TinyPreset, "--batch", "64", "--train-n", "16", "--val-n", "0", "--out", filepath.Join(dir, "q")}, 2, "more than the 16 training images"},
		{[]string{"data", "export", "shapes", "--limit", "1000000000000", "--out", filepath.Join(dir, "d")}, 2, "more than 10000000 images"},
		{[]string{"data", "export", "shapes", "--n", "1e12", "--out", filepath.Join(dir, "d")}, 2, "--n"},
		{[]string{"data", "inspect", dir, "--examples", "-1"}, 2, "--examples"},
	} {
		code, _, errs := runMope(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q", c.args, code, c.code, errs)
		}
	}
}

func TestContinueCommand(t *testing.T) {
	for _, c := range []struct {
		args   []string
		resume string
		want   string
	}{
		{[]string{"--out", "d", "--stop-at", "4"}, "--resume", "mope pretrain --out d --resume"},
		{[]string{"--stop-at=4", "--out", "a b", "--resume"}, "--resume", "mope pretrain --out 'a b' --resume"},
		{[]string{"--out", "it's"}, "", `mope pretrain --out 'it'\''s'`},
	} {
		if got := continueCommand("pretrain", c.args, c.resume); got != c.want {
			t.Errorf("continueCommand(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestInterruptedExit130(t *testing.T) {
	var errb strings.Builder
	err := reportStop(train.ErrInterrupted, &errb, "pretrain", []string{"--out", "d"}, "--resume", "d/checkpoint")
	if !isInterrupted(err) || !strings.Contains(errb.String(), "checkpoint in d/checkpoint") || !strings.Contains(errb.String(), "mope pretrain --out d --resume") {
		t.Errorf("%v: %q", err, errb.String())
	}
	if err := reportStop(train.ErrStopped, &errb, "pretrain", nil, "--resume", "d"); err != nil {
		t.Errorf("--stop-at is not a failure: %v", err)
	}
	// run maps an interruption to 130.
	commands["test-interrupt"] = &command{name: "test-interrupt", run: func([]string, io.Writer, io.Writer) error {
		return errors.Join(errors.New("scoring stopped"), context.Canceled)
	}}
	defer delete(commands, "test-interrupt")
	if code, _, _ := runMope("test-interrupt"); code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
}
