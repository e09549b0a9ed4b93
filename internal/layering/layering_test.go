package layering

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/mopeclip/mopeclip"

// Order lists the module's packages from the bottom layer up: a package may
// import only packages before it. Keep it in step with the layout table in
// README.md and docs/architecture.md (which say why each sits where it
// does); a new package fails the test until it is placed here.
var Order = []string{
	// Foundations: no model knowledge.
	"internal/layering",
	"internal/atomicfile",
	"internal/cputime",
	"internal/progress",
	"internal/chart",
	"internal/safetensors",
	"internal/ortnode",
	"tensor",
	"ops",
	"nn",
	// CLIP itself, and its lowering for the engines.
	"clip/tokenizer",
	"clip/imageproc",
	"clip/zeroshot",
	"clip",
	"clip/lower",
	"internal/testutil",
	// Data, above the model it feeds, and evaluation on it.
	"dataset/shapes",
	"dataset",
	"eval",
	"train",
	// Engines over the lowering.
	"infer",
	"cuda",
	"internal/world",
	"export",
	"mope",
	"mope/grid",
	// Programs.
	"bench/fmapeak",
	"bench/peers/mopeworker",
	"bench/prune",
	"bench/train",
	"cmd/mope",
}

// Exceptions are upward imports tolerated for now, each with the reason
// and who removes it.
var Exceptions = map[[2]string]string{}

// imports returns the module packages each package (by directory relative
// to the root) imports from its non-test files, whatever their build tags
// (the cuda-tagged files count).
func imports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := out[pkg]; !ok {
			out[pkg] = nil
		}
		for _, is := range f.Imports {
			p, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return err
			}
			if dep, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(out[pkg], dep) {
				out[pkg] = append(out[pkg], dep)
			}
		}
		return nil
	})
	require.NoError(t, err)
	delete(out, ".") // no package at the root
	return out
}

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("../..")
	require.NoError(t, err)
	if b, err := os.ReadFile(filepath.Join(r, "go.mod")); err != nil || !strings.Contains(string(b), "module "+module+"\n") {
		t.Fatalf("%s is not the module root (%v)", r, err)
	}
	return r
}

// TestImportOrder checks every import of every package against Order.
func TestImportOrder(t *testing.T) {
	graph := imports(t, root(t))
	rank := map[string]int{}
	for i, p := range Order {
		if _, dup := rank[p]; dup {
			t.Errorf("%s is listed twice in Order", p)
		}
		rank[p] = i
	}
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages (%v): the walk is broken", len(pkgs), pkgs)
	}
	for _, p := range pkgs {
		rp, ok := rank[p]
		if !ok {
			t.Errorf("package %s is not in layering.Order: place it there (and in the README layout table)", p)
			continue
		}
		for _, dep := range graph[p] {
			rd, ok := rank[dep]
			switch {
			case !ok:
				continue // reported as a package of its own
			case rd < rp:
				continue
			case Exceptions[[2]string{p, dep}] != "":
				t.Logf("tolerated upward import %s -> %s: %s", p, dep, Exceptions[[2]string{p, dep}])
			default:
				t.Errorf("%s imports %s, which layering.Order puts above it", p, dep)
			}
		}
	}
	for _, p := range Order {
		if _, ok := graph[p]; !ok {
			t.Errorf("layering.Order lists %s, which has no Go files", p)
		}
	}
	for e, why := range Exceptions {
		if !slices.Contains(graph[e[0]], e[1]) {
			t.Errorf("exception %s -> %s (%s) is no longer needed: remove it", e[0], e[1], why)
		}
	}
}

// TestWalkSeesUpwardImports makes sure the check can fail: the graph must
// contain imports that point up in a reversed order.
func TestWalkSeesUpwardImports(t *testing.T) {
	graph := imports(t, root(t))
	if !slices.Contains(graph["infer"], "clip/lower") || !slices.Contains(graph["cmd/mope"], "mope") {
		t.Fatalf("import graph misses known edges: infer %v, cmd/mope %v", graph["infer"], graph["cmd/mope"])
	}
	if !slices.Contains(graph["cuda"], "nn") && !slices.Contains(graph["cuda"], "clip/lower") {
		t.Errorf("the cuda-tagged files' imports are missing: cuda %v", graph["cuda"])
	}
}
