package clip

import (
	"math"
	"testing"
)

// PAPER.md: OpenAI CLIP ViT-B/32 is 4.41 GMACs per image and 2.98 GMACs per
// 77-token text.
func TestMACsMatchPublishedViTB32(t *testing.T) {
	c, _ := Preset("ViT-B/32")
	for _, tc := range []struct {
		name string
		got  int64
		want float64
	}{
		{"vision", c.VisionMACs().Total(), 4.41e9},
		{"text", c.TextMACs(0).Total(), 2.98e9},
	} {
		if math.Abs(float64(tc.got)-tc.want)/tc.want > 0.005 {
			t.Errorf("%s: %d MACs, want ≈ %.3g", tc.name, tc.got, tc.want)
		}
	}
}

func TestMACsFollowPerLayerWidths(t *testing.T) {
	c, _ := Preset("ViT-B/32")
	full := c.VisionMACs()
	c.Vision.LayerHeads = make([]int, 12)
	c.Vision.LayerIntermediate = make([]int, 12)
	for l := range c.Vision.LayerHeads {
		c.Vision.LayerHeads[l], c.Vision.LayerIntermediate[l] = 6, 1536
	}
	half := c.VisionMACs()
	for l := range full.Layers {
		if 2*half.Layers[l] != full.Layers[l] {
			t.Fatalf("layer %d: %d MACs with half the heads and MLP, full %d", l, half.Layers[l], full.Layers[l])
		}
	}
}
