package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mopeclip/mopeclip/cuda"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/train"
)

// isInterrupted reports whether err comes from a run stopped by SIGINT or
// SIGTERM (exit status 130).
func isInterrupted(err error) bool {
	return errors.Is(err, train.ErrInterrupted) || errors.Is(err, context.Canceled)
}

// signalContext is cancelled by SIGINT (Ctrl-C) or SIGTERM; the runs that
// watch it checkpoint and return an error for which isInterrupted holds.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// continueCommand is the command line that continues a stopped run: the
// same arguments without --stop-at, plus resume (e.g. "--resume") when it is
// not there yet.
func continueCommand(name string, args []string, resume string) string {
	parts := []string{"mope", name}
	has := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		flagName := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (flagName == "stop-at" || strings.HasPrefix(flagName, "stop-at=")) {
			if flagName == "stop-at" {
				i++ // its value
			}
			continue
		}
		if resume != "" && strings.TrimLeft(a, "-") == strings.TrimLeft(resume, "-") {
			has = true
		}
		parts = append(parts, shellQuote(a))
	}
	if resume != "" && !has {
		parts = append(parts, resume)
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// reportStop tells the user how to continue a run that ended with err:
// after --stop-at (train.ErrStopped) it says so and returns nil (exit 0);
// after an interruption it says where the checkpoint is and how to resume
// and returns err (exit 130). Other errors are returned unchanged.
func reportStop(err error, w io.Writer, name string, args []string, resume, checkpoint string) error {
	switch {
	case errors.Is(err, train.ErrStopped):
		fmt.Fprintf(w, "stopped as asked (--stop-at); checkpoint in %s; continue with:\n  %s\n", checkpoint, continueCommand(name, args, resume))
		return nil
	case isInterrupted(err):
		fmt.Fprintf(w, "interrupted; checkpoint in %s; resume with:\n  %s\n", checkpoint, continueCommand(name, args, resume))
		return err
	}
	return err
}

// maxBatch bounds --batch of the training commands: a contrastive batch of
// B pairs holds B×B similarities and B forward passes of activations.
const maxBatch = 65536

// checkBatch rejects a training batch larger than the training set.
func checkBatch(batch, n int) error {
	if batch > n {
		return fmt.Errorf("%w: --batch %d is more than the %d training images", errUsage, batch, n)
	}
	return nil
}

// refuseCheckpoint refuses to start a training run in dir when dir holds
// the checkpoint of an unfinished run, unless resume or force is set
// (force discards it).
func refuseCheckpoint(dir string, resume, force bool) error {
	ck := filepath.Join(dir, "checkpoint", train.CheckpointFile)
	if resume || force {
		return nil
	}
	if _, err := os.Stat(ck); err == nil {
		return fmt.Errorf("%s holds the checkpoint of an unfinished run: continue it with --resume, or pass --force to start over (the checkpoint is discarded)", ck)
	}
	return nil
}

// refuseSameDir refuses an --out that is the source directory src (named
// by flag), which writing would destroy, unless force is set.
func refuseSameDir(out, src, flag string, force bool) error {
	if force {
		return nil
	}
	return refuseSource(out, src, flag, " (or pass --force)")
}

// refuseSource refuses an --out that is the source directory src, with
// hint after the message (for a command without --force: "").
func refuseSource(out, src, flag, hint string) error {
	if src != "" && sameFile(out, src) {
		return fmt.Errorf("%w: --out %s is %s %s: writing it would destroy the source; choose another --out%s", errUsage, out, flag, src, hint)
	}
	return nil
}

// sameFile reports whether a and b name the same existing file or
// directory (or the same cleaned path).
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// checkOutFile checks, before any work, that a result file can be written
// at path: not a directory, in an existing directory where files can be
// created.
func checkOutFile(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("--out %s is a directory: want a file name", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--out %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--out %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, ".mope-write-check-*")
	if err != nil {
		return fmt.Errorf("--out %s: cannot write in %s: %w", path, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// lockOut takes the lock of an output (atomicfile.Lock) so that two runs
// writing the same --out fail fast instead of mixing their results.
func lockOut(path string) (release func(), err error) {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(path)), 0o755); err != nil {
		return nil, fmt.Errorf("--out %s: %w", path, err)
	}
	return atomicfile.Lock(filepath.Clean(path))
}

// claimOut takes the lock of --out (lockOut) and then the --device
// (useDevice), the way every command that trains or writes a model starts;
// release gives back both, the device first.
// The session (nil context on the CPU) is what scoring needs for its
// device-resident towers.
func claimOut(out string, dev cuda.Device, log io.Writer) (sess *deviceSession, release func(), err error) {
	return claimOutWith(out, dev, useDevice, log)
}

// claimTrainingOut is claimOut for pretrain and distill: the device is
// resident (useTrainingDevice).
func claimTrainingOut(out string, dev cuda.Device, log io.Writer) (sess *deviceSession, release func(), err error) {
	return claimOutWith(out, dev, useTrainingDevice, log)
}

func claimOutWith(out string, dev cuda.Device, use func(cuda.Device, io.Writer) (*deviceSession, error), log io.Writer) (sess *deviceSession, release func(), err error) {
	unlock, err := lockOut(out)
	if err != nil {
		return nil, nil, err
	}
	sess, err = use(dev, log)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return sess, func() {
		sess.Close()
		unlock()
	}, nil
}

// progressTo is where a command's progress goes: stderr, or nowhere with
// --quiet (errors are returned, and the resume hints go to stderr anyway).
func progressTo(stderr io.Writer, quiet bool) io.Writer {
	if quiet {
		return io.Discard
	}
	return stderr
}
