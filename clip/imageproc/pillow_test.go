package imageproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPillowParity runs testdata/pillow_ref.py (with /usr/bin/python3, or
// $MOPECLIP_PYTHON), which generates test images and Pillow's decoded RGB,
// resized 8-bit and normalised arrays, and compares this package against
// them. It skips when Python, numpy or Pillow is missing, unless
// MOPECLIP_REQUIRE_TORCH=1.
func TestPillowParity(t *testing.T) {
	py := os.Getenv("MOPECLIP_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join("testdata", "pillow_ref.py"), dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		missing := errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) ||
			(errors.As(err, &ee) && ee.ExitCode() == 3)
		if missing {
			msg := fmt.Sprintf("Pillow reference unavailable (%s: %v): %s", py, err, strings.TrimSpace(string(out)))
			if os.Getenv("MOPECLIP_REQUIRE_TORCH") == "1" {
				t.Fatalf("%s; MOPECLIP_REQUIRE_TORCH=1 requires it (install python3-pil and python3-numpy, or set MOPECLIP_PYTHON)", msg)
			}
			t.Skip(msg)
		}
		t.Fatalf("pillow_ref.py failed: %v\n%s", err, out)
	}
	var man struct {
		Pillow       string `json:"pillow"`
		Numpy        string `json:"numpy"`
		TorchChecked bool   `json:"torch_checked"`
		Cases        []struct {
			Name, File, Kind, Decoded string
			PilMode                   string `json:"pil_mode"`
			Width, Height             int
			Outputs                   []struct {
				Size         int
				Mode         string
				Resized, Pre string
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	t.Logf("Pillow %s, numpy %s, torch normalisation cross-checked: %v, %d cases",
		man.Pillow, man.Numpy, man.TorchChecked, len(man.Cases))
	if len(man.Cases) < 30 {
		t.Fatalf("only %d cases generated", len(man.Cases))
	}

	var table []string
	for _, c := range man.Cases {
		t.Run(c.Name, func(t *testing.T) {
			isJPEG := c.Kind == "jpeg"
			// Tolerances in 8-bit levels: PNG within one level everywhere
			// (in practice exact); JPEG mean ≤ 0.5 and max ≤ 8 per channel.
			maxTol, meanTol := 1.0, 1.0
			if isJPEG {
				maxTol, meanTol = 8, 0.5
			}
			check := func(what string, st diffStats) {
				t.Helper()
				for ch := range 3 {
					if st.max[ch] > maxTol || st.mean[ch] > meanTol {
						t.Errorf("%s: channel %d differs from Pillow: mean %.4f (tol %.2f), max %.4f (tol %.0f); all channels: %s",
							what, ch, st.mean[ch], meanTol, st.max[ch], maxTol, st)
					}
				}
			}

			img, err := Load(c.File)
			if err != nil {
				t.Fatal(err)
			}
			want, shape := mustNPY(t, c.Decoded)
			if !equalShape(shape, []int{img.Height, img.Width, 3}) {
				t.Fatalf("decoded %dx%d, Pillow %v", img.Width, img.Height, shape)
			}
			dec := statsHWC(img.Pix, want)
			check("decoded", dec)
			row := fmt.Sprintf("%-26s %-5s decoded %s", c.Name, c.PilMode, dec.short())
			var res, norm diffStats
			for _, o := range c.Outputs {
				mode, err := ParseMode(o.Mode)
				if err != nil {
					t.Fatal(err)
				}
				cfg := DefaultConfig(o.Size)
				cfg.Mode = mode
				tag := fmt.Sprintf("%d %s", o.Size, o.Mode)
				got8 := Prepare(img, cfg)
				want8, _ := mustNPY(t, o.Resized)
				st := statsHWC(got8.Pix, want8)
				check(tag+" resized", st)
				res = res.worst(st)
				pre := Preprocess(img, cfg)
				wantPre, shape := mustNPY(t, o.Pre)
				if !equalShape(shape, []int{3, o.Size, o.Size}) || len(pre) != len(wantPre) {
					t.Fatalf("%s: normalised shape %v, got %d values", tag, shape, len(pre))
				}
				st = statsCHW(pre, wantPre, cfg.Std)
				check(tag+" normalised", st)
				norm = norm.worst(st)
				if !isJPEG && st.exact != len(pre) {
					t.Logf("%s: %d of %d normalised values not bit-identical", tag, len(pre)-st.exact, len(pre))
				}
			}
			row += fmt.Sprintf(" | resized %s | normalised %s", res.short(), norm.short())
			if isJPEG {
				if def := goDefaultJPEG(t, c.File); def != nil {
					row += " | Go's own YCbCr→RGB " + statsHWC(def.Pix, want).short()
				}
			}
			table = append(table, row)
		})
	}
	t.Logf("differences from Pillow in 8-bit levels, worst channel (mean |Δ| / max |Δ|); resized and normalised: worst of %d outputs:\n%s",
		len(man.Cases[0].Outputs), strings.Join(table, "\n"))
}

// goDefaultJPEG decodes with image/jpeg and converts with Go's own colour
// conversion (nearest-neighbour chroma), for comparison in the log.
func goDefaultJPEG(t *testing.T, path string) *RGB8 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*image.YCbCr); !ok {
		return nil
	}
	return genericToRGB8(m)
}

type diffStats struct {
	mean, max [3]float64
	exact     int // values within 1e-7 (normalised) or equal (8-bit)
	n         int
}

// worst combines per-channel maxima of two comparisons.
func (s diffStats) worst(o diffStats) diffStats {
	for c := range 3 {
		s.mean[c] = max(s.mean[c], o.mean[c])
		s.max[c] = max(s.max[c], o.max[c])
	}
	return s
}

// short is the worst channel's mean and max.
func (s diffStats) short() string {
	return fmt.Sprintf("%.4f/%g", max(s.mean[0], s.mean[1], s.mean[2]), math.Round(1e3*max(s.max[0], s.max[1], s.max[2]))/1e3)
}

func (s diffStats) String() string {
	return fmt.Sprintf("mean |Δ| [%.4f %.4f %.4f]  max [%.3f %.3f %.3f] levels", s.mean[0], s.mean[1], s.mean[2], s.max[0], s.max[1], s.max[2])
}

// statsHWC compares interleaved 8-bit RGB with Pillow's values.
func statsHWC(got []uint8, want []float32) diffStats {
	var s diffStats
	if len(got) != len(want) {
		for i := range s.max {
			s.max[i] = math.Inf(1)
			s.mean[i] = math.Inf(1)
		}
		return s
	}
	for i, g := range got {
		d := math.Abs(float64(g) - float64(want[i]))
		c := i % 3
		s.mean[c] += d
		s.max[c] = max(s.max[c], d)
		if d == 0 {
			s.exact++
		}
	}
	s.n = len(got)
	for c := range 3 {
		s.mean[c] /= float64(len(got) / 3)
	}
	return s
}

// statsCHW compares normalised CHW tensors, in 8-bit levels (Δ·std·255).
func statsCHW(got, want []float32, std [3]float32) diffStats {
	var s diffStats
	n := len(got) / 3
	for i, g := range got {
		c := i / n
		d := math.Abs(float64(g)-float64(want[i])) * float64(std[c]) * 255
		s.mean[c] += d
		s.max[c] = max(s.max[c], d)
		if g == want[i] {
			s.exact++
		}
	}
	s.n = len(got)
	for c := range 3 {
		s.mean[c] /= float64(n)
	}
	return s
}

func mustNPY(t *testing.T, path string) ([]float32, []int) {
	t.Helper()
	d, s, err := ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
