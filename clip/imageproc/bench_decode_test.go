package imageproc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mopeclip/mopeclip/internal/cputime"
)

// BenchmarkDecodePreprocessJPEG measures the whole per-image path of
// evaluation on one goroutine: read the file, decode the JPEG, convert to
// RGB, resize and crop to 224, normalise. MOPECLIP_BENCH_JPEGS names a
// directory of .jpg files (scripts/bench-decode.sh makes one and runs
// Pillow on the same files); without it the benchmark uses the committed
// test photo.
func BenchmarkDecodePreprocessJPEG(b *testing.B) {
	files := []string{filepath.Join("testdata", "photo_97x161_440.jpg")}
	if dir := os.Getenv("MOPECLIP_BENCH_JPEGS"); dir != "" {
		m, _ := filepath.Glob(filepath.Join(dir, "*.jpg"))
		if len(m) == 0 {
			b.Fatalf("no .jpg files in %s", dir)
		}
		slices.Sort(m)
		files = m
	}
	data := make([][]byte, len(files))
	for i, f := range files {
		var err error
		if data[i], err = os.ReadFile(f); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig(224)
	out := make([]float32, 3*224*224)
	b.ResetTimer()
	cpu0 := cputime.Process()
	for i := 0; i < b.N; i++ {
		img, err := Decode(data[i%len(data)])
		if err != nil {
			b.Fatal(err)
		}
		normalizeInto(out, Prepare(img, cfg), cfg.Mean, cfg.Std)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	if cpu := cputime.Process() - cpu0; cpu > 0 {
		// Per CPU-second: what one core does, however loaded the machine.
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "images/cpu-s")
	}
}
