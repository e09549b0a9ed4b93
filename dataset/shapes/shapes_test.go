package shapes

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func mustGenerate(t testing.TB, cfg Config, split string, n int) []Example {
	t.Helper()
	exs, err := Generate(cfg, split, n)
	if err != nil {
		t.Fatal(err)
	}
	return exs
}

func sameExample(a, b Example) bool {
	return a.ID == b.ID && bytes.Equal(a.Image.Pix, b.Image.Pix) && slices.Equal(a.Captions, b.Captions) &&
		slices.Equal(a.Objects, b.Objects) && a.TwinOf == b.TwinOf && a.Change == b.Change
}

func TestDeterministicAcrossRunsAndWorkers(t *testing.T) {
	cfg := DefaultConfig()
	a := mustGenerate(t, cfg, "test", 100)
	prev := runtime.GOMAXPROCS(1)
	b := mustGenerate(t, cfg, "test", 100)
	runtime.GOMAXPROCS(prev)
	for i := range a {
		if !sameExample(a[i], b[i]) {
			t.Fatalf("example %d differs between runs", i)
		}
	}
	// Partial generation gives the same examples.
	part, err := GenerateRange(cfg, "test", 37, 20)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range part {
		if !sameExample(e, a[37+i]) {
			t.Fatalf("GenerateRange example %d differs from Generate", 37+i)
		}
	}
}

func TestSplitsAndSeedsDiffer(t *testing.T) {
	cfg := DefaultConfig()
	base := mustGenerate(t, cfg, "test", 20)
	other := cfg
	other.Seed = 2
	for _, c := range []struct {
		name string
		exs  []Example
	}{
		{"train", mustGenerate(t, cfg, "train", 20)},
		{"val", mustGenerate(t, cfg, "val", 20)},
		{"calib", mustGenerate(t, cfg, "calib", 20)},
		{"seed 2", mustGenerate(t, other, "test", 20)},
	} {
		same := 0
		for i := range base {
			if bytes.Equal(base[i].Image.Pix, c.exs[i].Image.Pix) || slices.Equal(base[i].Captions, c.exs[i].Captions) {
				same++
			}
		}
		if same > 0 {
			t.Errorf("%s: %d of %d examples equal to test split, seed 1", c.name, same, len(base))
		}
	}
	if _, err := Generate(cfg, "bogus", 3); err == nil || !strings.Contains(err.Error(), "unknown split") {
		t.Errorf("unknown split: err = %v", err)
	}
}

// TestGolden pins the default world: a change here changes every benchmark
// number measured on it, so it must be deliberate (then update the hash).
func TestGolden(t *testing.T) {
	exs := mustGenerate(t, DefaultConfig(), "test", 200)
	h := sha256.New()
	for _, e := range exs {
		h.Write(e.Image.Pix)
		fmt.Fprintln(h, e.Captions, e.Objects, e.Background, e.TwinOf, e.Change)
	}
	got := fmt.Sprintf("%x", h.Sum(nil))
	const want = "496bf7a619f1c3f4e0e2c0847f18392ad201ad99f9ea26aa00aa20ada0956bb0"
	if got != want {
		t.Errorf("default world changed: hash %s, want %s", got, want)
	}
}

func TestDefaultSizesAndConfig(t *testing.T) {
	cfg := DefaultConfig()
	for split, want := range map[string]int{"train": 20000, "val": 1000, "test": 1000, "calib": 1000} {
		n, err := cfg.SplitSize(split)
		if err != nil || n != want {
			t.Errorf("%s size %d, %v; want %d", split, n, err, want)
		}
	}
	small := Config{Seed: 3, ValSize: 7}
	exs, err := Generate(small, "val", 0)
	if err != nil || len(exs) != 7 {
		t.Fatalf("Generate(val, 0) = %d examples, %v; want 7", len(exs), err)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.ImageSize = 8 },
		func(c *Config) { c.Supersample = 16 },
		func(c *Config) { c.MinObjects, c.MaxObjects = 3, 2 },
		func(c *Config) { c.MaxObjects = 6 },
		func(c *Config) { c.Shapes = 11 },
		func(c *Config) { c.Colors = 2 },
		func(c *Config) { c.Noise = 1.5 },
		func(c *Config) { c.RelationProb = math.NaN() },
		func(c *Config) { c.Backgrounds = []BackgroundStyle{9} },
	} {
		c := DefaultConfig()
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestGeometryInvariants(t *testing.T) {
	cfg := DefaultConfig()
	exs := mustGenerate(t, cfg, "train", 3000)
	counts := map[int]int{}
	shapes, colors := map[Shape]int{}, map[Color]int{}
	styles := map[BackgroundStyle]int{}
	for _, e := range exs {
		n := len(e.Objects)
		counts[n]++
		styles[e.Background.Style]++
		if n < cfg.MinObjects || n > cfg.MaxObjects {
			t.Fatalf("%s: %d objects", e.ID, n)
		}
		if len(e.Captions) != cfg.CaptionsPerImage {
			t.Fatalf("%s: %d captions", e.ID, len(e.Captions))
		}
		if e.Image.Rect.Dx() != 64 || e.Image.Rect.Dy() != 64 {
			t.Fatalf("%s: image %v", e.ID, e.Image.Rect)
		}
		for i, o := range e.Objects {
			shapes[o.Shape]++
			colors[o.Color]++
			if !fits(o, e.Objects, i) {
				t.Fatalf("%s: object %d overlaps or leaves the image: %+v", e.ID, i, o)
			}
			if inDeadBand(o.X) || inDeadBand(o.Y) || o.Position != positionOf(o.X, o.Y) {
				t.Fatalf("%s: ambiguous position %+v", e.ID, o)
			}
			rr := radiusRange[o.Size]
			if o.R < rr[0] || o.R > rr[1] {
				t.Fatalf("%s: radius %v for %v", e.ID, o.R, o.Size)
			}
			if e.Background.Named && o.Color == e.Background.Color {
				t.Fatalf("%s: object colour equals the background colour", e.ID)
			}
			for _, bg := range e.Background.RGB {
				if rgbDist(colorRGB[o.Color], bg) < minContrast {
					t.Fatalf("%s: %v object on background %v", e.ID, o.Color, bg)
				}
			}
		}
	}
	for n := cfg.MinObjects; n <= cfg.MaxObjects; n++ {
		if counts[n] < len(exs)/6 {
			t.Errorf("%d-object scenes: %d of %d", n, counts[n], len(exs))
		}
	}
	if len(shapes) != len(AllShapes) || len(colors) != len(AllColors) || len(styles) != int(numStyles) {
		t.Errorf("vocabulary not covered: %d shapes, %d colours, %d styles", len(shapes), len(colors), len(styles))
	}
	t.Logf("objects per image: %v", counts)
}

// TestPixelsShowObjects checks that each solid object's colour is at its centre.
func TestPixelsShowObjects(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Noise = 0
	for _, e := range mustGenerate(t, cfg, "val", 300) {
		for _, o := range e.Objects {
			if o.Shape == Ring || o.Shape == Crescent {
				continue
			}
			// Sum a 2×2 block at the centre (robust to the centre lying on a pixel edge).
			x, y := int(o.X*64), int(o.Y*64)
			c := e.Image.RGBAAt(x, y)
			if d := rgbDist(c, o.RGB); d > 1 {
				t.Errorf("%s: %v %v centre pixel %v, painted %v", e.ID, o.Color, o.Shape, c, o.RGB)
			}
		}
	}
}

func TestVocabularyKnobs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Shapes, cfg.Colors = 3, 4
	cfg.MinObjects, cfg.MaxObjects = 2, 2
	cfg.ImageSize, cfg.Supersample = 96, 1
	cfg.CaptionsPerImage = 3
	cfg.Backgrounds = []BackgroundStyle{Stripes}
	for _, e := range mustGenerate(t, cfg, "train", 300) {
		if e.Image.Rect.Dx() != 96 || len(e.Captions) != 3 || e.Background.Style != Stripes {
			t.Fatalf("%s: size %v, %d captions, %v", e.ID, e.Image.Rect, len(e.Captions), e.Background.Style)
		}
		for _, o := range e.Objects {
			if o.Shape >= 3 || o.Color >= 4 {
				t.Fatalf("%s: %v %v outside the vocabulary", e.ID, o.Color, o.Shape)
			}
		}
		if len(e.Objects) != 2 {
			t.Fatalf("%s: %d objects", e.ID, len(e.Objects))
		}
	}
}

func TestHardNegatives(t *testing.T) {
	cfg := DefaultConfig()
	exs := mustGenerate(t, cfg, "test", 1000)
	twins := map[string]int{}
	for _, e := range exs {
		if e.TwinOf < 0 {
			continue
		}
		twins[e.Change]++
		b := exs[e.TwinOf]
		if e.TwinOf != e.Index-1 || b.Background != e.Background || len(b.Objects) != len(e.Objects) {
			t.Fatalf("%s: bad twin of %s", e.ID, b.ID)
		}
		var diff []int
		for i := range e.Objects {
			if e.Objects[i] != b.Objects[i] {
				diff = append(diff, i)
			}
		}
		p, q := e.Objects, b.Objects
		switch e.Change {
		case "color", "shape", "size":
			if len(diff) != 1 {
				t.Fatalf("%s: %d objects changed", e.ID, len(diff))
			}
			i := diff[0]
			changed := map[string]bool{"color": p[i].Color != q[i].Color, "shape": p[i].Shape != q[i].Shape, "size": p[i].Size != q[i].Size}
			for k, v := range changed {
				if v != (k == e.Change) {
					t.Fatalf("%s: change %s but %v vs %v", e.ID, e.Change, p[i], q[i])
				}
			}
			if p[i].X != q[i].X || p[i].Y != q[i].Y {
				t.Fatalf("%s: object moved", e.ID)
			}
		case "swap":
			if len(diff) != 2 {
				t.Fatalf("%s: swap changed %d objects", e.ID, len(diff))
			}
			i, j := diff[0], diff[1]
			if p[i].X != q[j].X || p[i].Y != q[j].Y || p[i].Shape != q[i].Shape || p[i].Color != q[i].Color {
				t.Fatalf("%s: not a swap: %v vs %v", e.ID, p, q)
			}
		default:
			t.Fatalf("%s: unknown change %q", e.ID, e.Change)
		}
		if bytes.Equal(e.Image.Pix, b.Image.Pix) {
			t.Fatalf("%s: twin image identical", e.ID)
		}
	}
	total := 0
	for _, n := range twins {
		total += n
	}
	// Expected 500 odd indices × 0.3 = 150.
	if total < 100 || total > 200 || len(twins) < 4 {
		t.Errorf("hard negatives: %v", twins)
	}
	t.Logf("hard negatives in 1000 test images: %v", twins)
}

func TestExportDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		sum, err := ExportSplits(d, cfg, Part{"test", 12}, Part{"val", 5})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Images != 17 || sum.Captions != 17*5 || sum.Bytes == 0 {
			t.Fatalf("summary %+v", sum)
		}
	}
	var files []string
	filepath.Walk(dirs[0], func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dirs[0], p)
			files = append(files, rel)
		}
		return err
	})
	if len(files) != 18 {
		t.Fatalf("exported files %v", files)
	}
	for _, f := range files {
		a, err1 := os.ReadFile(filepath.Join(dirs[0], f))
		b, err2 := os.ReadFile(filepath.Join(dirs[1], f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs between exports (%v, %v)", f, err1, err2)
		}
	}
	if err := Export(t.TempDir(), cfg, "nope", 3); err == nil {
		t.Error("export of an unknown split succeeded")
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig()
	for i := 0; i < b.N; i++ {
		if _, err := GenerateRange(cfg, "train", i*1000, 1000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "images/s")
}
