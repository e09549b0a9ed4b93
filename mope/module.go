package mope

import (
	"fmt"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/nn"
)

// Tower names: clip.VisionTower and clip.TextTower (Module.Tower); a
// selection of towers (options, score files) is a clip.TowerSet, written
// in JSON as the list of names (["vision","text"]).
const (
	Vision = clip.VisionTower
	Text   = clip.TextTower
)

// Module kinds.
const (
	KindHead  = "head"
	KindFFN   = "ffn"
	KindLayer = "layer"
)

// DefaultGroups is the default number of FFN neuron groups per layer.
const DefaultGroups = 16

// GroupRule describes how FFN neurons are grouped (recorded in score files).
const GroupRule = "contiguous: group g of G'=min(G,I) holds neurons [floor(g*I/G'), floor((g+1)*I/G'))"

// Module is one prunable unit: a head, an FFN neuron group or a layer of one
// tower. Index is the head or group index (0 for a layer).
type Module struct {
	Tower clip.Tower `json:"tower"`
	Kind  string     `json:"kind"`
	Layer int        `json:"layer"`
	Index int        `json:"index"`
}

// String returns e.g. "vision.L3.head5", "text.L0.ffn2", "vision.L11".
func (m Module) String() string {
	if m.Kind == KindLayer {
		return fmt.Sprintf("%s.L%d", m.Tower, m.Layer)
	}
	return fmt.Sprintf("%s.L%d.%s%d", m.Tower, m.Layer, m.Kind, m.Index)
}

// ParseTowers parses "vision", "text" or "both" (or a comma list; see
// clip.ParseTowerSet) into a selection; the empty string is an error.
func ParseTowers(s string) (clip.TowerSet, error) {
	return clip.ParseTowerSet(s)
}

// ParseKinds parses a comma list of heads, ffn, layers (singular forms too),
// returned in the canonical order head, ffn, layer.
func ParseKinds(s string) ([]string, error) {
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "heads", "head":
			seen[KindHead] = true
		case "ffn", "ffns", "neurons":
			seen[KindFFN] = true
		case "layers", "layer":
			seen[KindLayer] = true
		default:
			return nil, fmt.Errorf("unknown module kind %q (want heads, ffn, layers)", f)
		}
	}
	var out []string
	for _, k := range []string{KindHead, KindFFN, KindLayer} {
		if seen[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// towerOf returns the tower config and encoder of m.
func towerOf(m *clip.Model, tower clip.Tower) (*clip.TowerConfig, *nn.Transformer) {
	if tower == Vision {
		return &m.Config.Vision, m.Vision.Encoder
	}
	return &m.Config.Text, m.Text.Encoder
}

// numHeads and numNeurons read the live block (the source of truth).
func numHeads(b *nn.Block) int {
	if b.SelfAttn == nil {
		return 0
	}
	return b.SelfAttn.Heads
}

func numNeurons(b *nn.Block) int {
	if b.MLP == nil {
		return 0
	}
	return b.MLP.Hidden()
}

// NumGroups returns the number of FFN groups of a layer with I neurons.
func NumGroups(I, G int) int { return min(I, G) }

// NeuronGroup returns the neuron range [lo, hi) of group g of a layer with I
// neurons cut into G groups (see GroupRule).
func NeuronGroup(I, G, g int) (lo, hi int) {
	n := NumGroups(I, G)
	return g * I / n, (g + 1) * I / n
}

// Modules enumerates the modules of the given towers and kinds in the
// canonical order: tower (vision, text), kind (head, ffn, layer), layer,
// index. Score files, shards and merges all use this order.
func Modules(m *clip.Model, towers clip.TowerSet, kinds []string, groups int) []Module {
	var out []Module
	for _, tw := range clip.AllTowers {
		if !towers.Has(tw) {
			continue
		}
		_, enc := towerOf(m, tw)
		for _, k := range []string{KindHead, KindFFN, KindLayer} {
			if !contains(kinds, k) {
				continue
			}
			for l, b := range enc.Layers {
				switch k {
				case KindHead:
					for h := 0; h < numHeads(b); h++ {
						out = append(out, Module{tw, k, l, h})
					}
				case KindFFN:
					for g := 0; g < NumGroups(numNeurons(b), groups); g++ {
						out = append(out, Module{tw, k, l, g})
					}
				case KindLayer:
					out = append(out, Module{tw, k, l, 0})
				}
			}
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
