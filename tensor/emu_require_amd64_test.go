package tensor

import (
	"fmt"
	"os"
	"testing"
)

// requireEmu is the variable that makes the instruction-emulator tests
// (gemm_emu, bf16_emu, int8_emu, vec_emu) fail instead of skip when the
// emulator cannot run here (no objdump, a binary it cannot read, a CPU
// without the AVX2 it is validated against). .ci/run sets it, so that the
// only tests of the AVX-512 kernels on machines without AVX-512 cannot
// silently vanish.
const requireEmu = "MOPECLIP_REQUIRE_EMU"

// emuSkip skips t, or fails it when MOPECLIP_REQUIRE_EMU is set.
func emuSkip(t testing.TB, args ...any) {
	t.Helper()
	if os.Getenv(requireEmu) != "" {
		t.Fatalf("%s is set but the instruction emulator cannot run: %s", requireEmu, fmt.Sprint(args...))
		return // (t.Fatalf does not return; the fake of the test below does)
	}
	t.Skip(args...)
}

// emuSkipf is emuSkip with a format.
func emuSkipf(t testing.TB, format string, args ...any) {
	t.Helper()
	emuSkip(t, fmt.Sprintf(format, args...))
}

// fakeTB records what emuSkip does, for TestEmuSkipRequired (the methods
// it calls; the embedded nil TB panics on any other).
type fakeTB struct {
	testing.TB
	failed, skipped bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }
func (f *fakeTB) Skip(...any)           { f.skipped = true }

// TestEmuSkipRequired checks the switch itself: a skip without the
// variable, a failure with it.
func TestEmuSkipRequired(t *testing.T) {
	for _, set := range []bool{false, true} {
		v := ""
		if set {
			v = "1"
		}
		t.Setenv(requireEmu, v)
		f := &fakeTB{}
		emuSkipf(f, "objdump: %v", "missing")
		if f.failed != set || f.skipped == set {
			t.Errorf("%s=%q: failed %v, skipped %v", requireEmu, v, f.failed, f.skipped)
		}
	}
}
