package export

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
)

// Dense returns a copy of m that stock Hugging Face transformers can load
// as CLIPModel: every layer of a tower has the tower's num_attention_heads
// heads and one intermediate_size (the widest kept layer's MLP width), and
// the config carries no mopeclip_* keys. A pruned layer's missing heads and
// neurons are zeros: zero q/k/v rows and biases and zero out_proj columns
// (a zero head attends uniformly to zero values and adds nothing), zero fc1
// rows and biases (QuickGELU and GELU map 0 to 0) and zero fc2 columns; a
// removed branch also gets zero out_proj or fc2 biases. The outputs are
// those of m up to rounding; the FLOPs are those of the padded shapes
// (compatibility, not speed). Removed layers stay removed.
func Dense(m *clip.Model) (*clip.Model, error) {
	if err := checkExportable(m); err != nil {
		return nil, err
	}
	cfg := m.Config.Clone()
	for _, t := range []*clip.TowerConfig{&cfg.Vision, &cfg.Text} {
		widest := 1
		for l := 0; l < t.NumHiddenLayers; l++ {
			widest = max(widest, t.Intermediate(l))
		}
		t.IntermediateSize = widest
		t.LayerHeads, t.LayerIntermediate, t.TeacherLayers = nil, nil, nil
	}
	out, err := clip.New(cfg, 1)
	if err != nil {
		return nil, fmt.Errorf("export: padded config: %w", err)
	}
	src := map[string]*nn.Param{}
	for _, p := range m.Params() {
		src[p.Name] = p
	}
	for _, p := range out.Params() {
		if err := padInto(p, src[p.Name]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// padInto sets dst to zeros with s's values in its leading corner (the first
// rows of a [out,in] weight or bias, or the first columns); a nil s leaves
// zeros (a removed branch).
func padInto(dst, s *nn.Param) error {
	d := dst.Value
	for i := range d.Data {
		d.Data[i] = 0
	}
	if s == nil {
		return nil
	}
	v := s.Value
	if len(v.Shape) != len(d.Shape) {
		return fmt.Errorf("export: %s: shape %v does not fit the padded %v", dst.Name, v.Shape, d.Shape)
	}
	for i := range v.Shape {
		if v.Shape[i] > d.Shape[i] {
			return fmt.Errorf("export: %s: shape %v does not fit the padded %v", dst.Name, v.Shape, d.Shape)
		}
	}
	switch len(v.Shape) {
	case 2:
		rows, cols, dcols := v.Shape[0], v.Shape[1], d.Shape[1]
		for r := 0; r < rows; r++ {
			copy(d.Data[r*dcols:r*dcols+cols], v.Data[r*cols:(r+1)*cols])
		}
	default: // 0-d, 1-d, and the untouched embeddings of any rank (same shape)
		if len(v.Shape) > 1 && !sameShape(v.Shape, d.Shape) {
			return fmt.Errorf("export: %s: shape %v differs from %v", dst.Name, v.Shape, d.Shape)
		}
		copy(d.Data, v.Data)
	}
	return nil
}

func sameShape(a, b []int) bool {
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
