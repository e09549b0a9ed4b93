package clip

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// pythonWith returns the interpreter for cross-checks when it can import the
// modules, skipping the test otherwise (failing when MOPECLIP_REQUIRE_TORCH=1).
func pythonWith(t *testing.T, modules string) string {
	t.Helper()
	py := os.Getenv("MOPECLIP_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import "+modules).Run(); err != nil {
		if os.Getenv("MOPECLIP_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import %s (MOPECLIP_REQUIRE_TORCH=1): %v", py, modules, err)
		}
		t.Skipf("%s cannot import %s; install python3-torch python3-numpy", py, modules)
	}
	return py
}

// randomTextBatch makes B rows of length T: SOT, random ids, EOT, zero padding.
func randomTextBatch(rng *tensor.RNG, B, T, vocab, eos int) *TextBatch {
	tb := &TextBatch{IDs: make([]int, B*T), B: B, T: T}
	for b := 0; b < B; b++ {
		n := 2 + rng.IntN(T-1) // tokens including SOT and EOT
		row := tb.IDs[b*T : (b+1)*T]
		row[0] = vocab - 2
		for j := 1; j < n-1; j++ {
			row[j] = 1 + rng.IntN(vocab-3)
		}
		row[n-1] = eos
	}
	tb.EOTPos = EOTPositions(tb.IDs, B, T, eos)
	return tb
}

func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		num = math.Max(num, math.Abs(d))
		den = math.Max(den, math.Abs(float64(want[i])))
	}
	return num / den
}

// TestTorchParity checks image and text embeddings of random-weight
// checkpoints against an independent float64 PyTorch implementation
// (testdata/torch_clip.py) reading the same saved checkpoint.
func TestTorchParity(t *testing.T) {
	py := pythonWith(t, "torch, numpy")
	presets := []string{"tiny", "ViT-B/32"}
	if testing.Short() {
		presets = presets[:1]
	}
	for _, name := range presets {
		t.Run(name, func(t *testing.T) {
			cfg, _ := Preset(name)
			m, err := New(cfg, 7)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := m.Save(dir); err != nil {
				t.Fatal(err)
			}
			m, err = Load(dir) // parity of what was written and read back
			if err != nil {
				t.Fatal(err)
			}
			rng := tensor.NewRNG(11)
			S := cfg.Vision.ImageSize
			const N = 3
			pix := tensor.New(N, 3, S, S).Normal(rng, 0, 1)
			tb := randomTextBatch(rng, 4, 77, cfg.Text.VocabSize, cfg.Text.EOSTokenID)
			pixPath := filepath.Join(dir, "pixels.npy")
			if err := imageproc.WriteNPY(pixPath, pix.Data, pix.Shape); err != nil {
				t.Fatal(err)
			}
			rows := make([][]int, tb.B)
			for b := range rows {
				rows[b] = tb.IDs[b*tb.T : (b+1)*tb.T]
			}
			idsJSON, _ := json.Marshal(map[string]any{"ids": rows})
			idsPath := filepath.Join(dir, "ids.json")
			os.WriteFile(idsPath, idsJSON, 0o644)
			imgOut, txtOut := filepath.Join(dir, "img.npy"), filepath.Join(dir, "txt.npy")
			cmd := exec.Command(py, "testdata/torch_clip.py", dir, pixPath, idsPath, imgOut, txtOut)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("torch reference: %v\n%s", err, out)
			}
			img := m.EncodeImage(nil, ops.Const(pix)).Value
			txt := m.EncodeText(nil, tb).Value
			for _, c := range []struct {
				name string
				got  []float32
				path string
			}{{"image", img.Data, imgOut}, {"text", txt.Data, txtOut}} {
				want, shape, err := imageproc.ReadNPY(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if len(want) != len(c.got) {
					t.Fatalf("%s: torch shape %v, ours %d values", c.name, shape, len(c.got))
				}
				e := relErr(c.got, want)
				t.Logf("%s %s embeddings: max relative error %.2e", name, c.name, e)
				if !(e <= 1e-4) {
					t.Errorf("%s %s embeddings differ from PyTorch: relative error %.3e > 1e-4", name, c.name, e)
				}
			}
		})
	}
}
