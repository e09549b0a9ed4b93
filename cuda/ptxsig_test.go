package cuda

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPTXSignatures runs in every build: the committed PTX of each
// architecture must define exactly the kernels of kernelSigs, with the
// parameter types the Go launchers pass.
func TestPTXSignatures(t *testing.T) {
	files, err := filepath.Glob("ptx/*.ptx")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ptx/*.ptx: run make -C cuda ptx")
	}
	byArch := map[string]map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(f) // name.sm_XX.ptx
		parts := strings.Split(strings.TrimSuffix(base, ".ptx"), ".")
		if len(parts) != 2 || !strings.HasPrefix(parts[1], "sm_") {
			t.Fatalf("%s: want kernels.sm_XX.ptx", f)
		}
		if byArch[parts[1]] == nil {
			byArch[parts[1]] = map[string]string{}
		}
		byArch[parts[1]][base] = string(b)
		if !strings.Contains(string(b), ".target "+parts[1]) {
			t.Errorf("%s: no .target %s", f, parts[1])
		}
	}
	var archs []string
	for a := range byArch {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	if strings.Join(archs, ",") != "sm_80,sm_90" {
		t.Errorf("PTX architectures %v, want sm_80 and sm_90", archs)
	}
	for _, a := range archs {
		for _, p := range checkPTXSignatures(byArch[a]) {
			t.Errorf("%s: %s", a, p)
		}
	}
}

func TestPTXEntriesParser(t *testing.T) {
	ptx := `
.visible .entry k1(
	.param .u64 k1_param_0,
	.param .u32 k1_param_1,
	.param .f32 k1_param_2
)
{ ret; }
.visible .entry k2()
{ ret; }`
	got := ptxEntries(ptx)
	if got["k1"] != "u64,u32,f32" || got["k2"] != "" || len(got) != 2 {
		t.Fatalf("ptxEntries = %v", got)
	}
}
