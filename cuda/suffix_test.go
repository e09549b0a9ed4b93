//go:build cuda

package cuda

import (
	"math"

	"testing"

	"github.com/mopeclip/mopeclip/clip"
)

// TestSuffix runs the tiny towers through Suffix on n items in batches
// that leave a short last one: the embeddings from layer 0 equal the
// model's (1e-5), and so do the ones from the states after layer 0
// (into new states, in place, and through its two branches).
func TestSuffix(t *testing.T) {
	cfg, err := clip.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := clip.New(cfg, 41)
	if err != nil {
		t.Fatal(err)
	}
	const n, batch = 7, 3
	pixels := randomPixels(cfg, n, 42)
	lens := []int{2, 5, 77, 9, 3, 40, 77}
	texts := randomTexts(cfg, lens, cfg.Text.MaxPositionEmbeddings, 43)
	for _, tw := range []clip.Tower{clip.VisionTower, clip.TextTower} {
		s, err := NewSuffix(dev, m, tw, EncoderOptions{MaxBatch: batch})
		if err != nil {
			t.Fatal(err)
		}
		var want []float32
		var eot []int
		st, err := s.NewStates(n, s.T)
		if err != nil {
			t.Fatal(err)
		}
		for lo := 0; lo < n; lo += batch {
			hi := min(n, lo+batch)
			if tw == clip.VisionTower {
				err = s.EmbedImages(st, lo, pixels[lo*len(pixels)/n:hi*len(pixels)/n], hi-lo)
			} else {
				T := texts.T
				err = s.EmbedTexts(st, lo, &clip.TextBatch{IDs: texts.IDs[lo*T : hi*T], EOTPos: texts.EOTPos[lo:hi], B: hi - lo, T: T})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if tw == clip.VisionTower {
			want = clone(cpuEmbeddings(m, pixels, n))
		} else {
			want, eot = clone(m.EncodeText(nil, texts).Value.Data), texts.EOTPos
		}
		L := s.Layers()
		from := func(what string, st *States, layers []*Layer) {
			t.Helper()
			got := make([]float32, n*s.E)
			for i := range got {
				got[i] = float32(math.NaN())
			}
			if err := s.EmbedFrom(st, layers, eot, got); err != nil {
				t.Fatal(err)
			}
			expect(t, "suffix", tw.String()+" "+what, got, want, tolFP32)
		}
		from("layer 0", st, L)
		next, err := s.NewStates(n, s.T)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RunLayers(next, st, L[:1]); err != nil {
			t.Fatal(err)
		}
		from("layer 1", next, L[1:])
		mid, err := s.NewStates(n, s.T)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RunLayers(mid, st, []*Layer{L[0].Branch(true)}); err != nil {
			t.Fatal(err)
		}
		if err := s.RunLayers(mid, mid, []*Layer{L[0].Branch(false)}); err != nil { // in place
			t.Fatal(err)
		}
		from("layer 1 by branches", mid, L[1:])
		from("layer 0 again (states unchanged)", st, L)
		// A layer uploaded from the model's own block runs as the model's.
		blocks := m.Vision.Encoder.Layers
		if tw == clip.TextTower {
			blocks = m.Text.Encoder.Layers
		}
		v, err := s.PackBlock(blocks[0], true, true)
		if err != nil {
			t.Fatal(err)
		}
		from("packed layer 0", st, append([]*Layer{v}, L[1:]...))
		s.Release(v)
		for _, x := range []*States{st, next, mid} {
			x.Free()
		}
		s.Close()
	}
}

// TestSuffixErrors: what a caller can get wrong is an error, not a crash.
func TestSuffixErrors(t *testing.T) {
	cfg, _ := clip.Preset("tiny")
	m, err := clip.New(cfg, 44)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSuffix(dev, m, clip.Tower("both"), EncoderOptions{}); err == nil {
		t.Error("unknown tower accepted")
	}
	s, err := NewSuffix(dev, m, clip.VisionTower, EncoderOptions{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range [][2]int{{0, s.T}, {3, s.T - 1}, {3, s.T + 1}} {
		if _, err := s.NewStates(c[0], c[1]); err == nil {
			t.Errorf("NewStates(%d, %d) accepted", c[0], c[1])
		}
	}
	st, err := s.NewStates(3, s.T)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Free()
	px := randomPixels(cfg, 2, 45)
	if err := s.EmbedImages(st, 2, px, 2); err == nil {
		t.Error("items past the states accepted")
	}
	if err := s.EmbedImages(st, 0, px[:len(px)-1], 2); err == nil {
		t.Error("short pixels accepted")
	}
	if err := s.EmbedTexts(st, 0, randomTexts(cfg, []int{3}, 8, 46)); err == nil {
		t.Error("texts into the vision tower accepted")
	}
	if err := s.EmbedFrom(st, s.Layers(), nil, make([]float32, 3*s.E-1)); err == nil {
		t.Error("short output accepted")
	}
	wide := *cfg
	wide.Vision.IntermediateSize *= 2
	w, err := clip.New(&wide, 47)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PackBlock(w.Vision.Encoder.Layers[0], true, true); err == nil {
		t.Error("a block wider than the model's accepted")
	}
	ts, err := NewSuffix(dev, m, clip.TextTower, EncoderOptions{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	tst, err := ts.NewStates(2, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer tst.Free()
	if err := ts.EmbedTexts(tst, 0, randomTexts(cfg, []int{3, 4}, 9, 48)); err == nil {
		t.Error("texts of another length than the states accepted")
	}
	if err := ts.EmbedFrom(tst, ts.Layers(), []int{0}, make([]float32, 2*ts.E)); err == nil {
		t.Error("missing EOT positions accepted")
	}
	if err := ts.RunLayers(st, tst, nil); err == nil {
		t.Error("states of another tower accepted")
	}
}
