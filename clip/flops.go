package clip

// MACs counts multiply–accumulates of one forward pass, per layer and in all,
// from the configuration alone (per-layer widths included). Layer norms,
// softmax and activations are not counted (they are O(T·C), not O(T·C²)).
type MACs struct {
	Embed  int64   // patch conv (vision) or 0 (text: a table lookup)
	Layers []int64 // one per encoder layer
	Head   int64   // projection
}

// Total returns the sum.
func (m MACs) Total() int64 {
	t := m.Embed + m.Head
	for _, l := range m.Layers {
		t += l
	}
	return t
}

// GFLOPs returns 2·MACs/1e9.
func (m MACs) GFLOPs() float64 { return 2 * float64(m.Total()) / 1e9 }

// LayerMACs counts one pre-LN block with T tokens, width C, h heads of dim
// D, and MLP width I: q/k/v/out projections, scores and weighted values, fc1
// and fc2. With causal masking the score work is still counted in full (as
// dense implementations do).
func LayerMACs(T, C, h, D, I int) int64 {
	t, c, hd := int64(T), int64(C), int64(h*D)
	return 4*t*c*hd + 2*t*t*hd + 2*t*c*int64(I)
}

// VisionMACs counts one image through the vision tower and projection.
func (c *Config) VisionMACs() MACs {
	v := &c.Vision
	T := v.NumPatches() + 1
	m := MACs{
		Embed: int64(v.NumPatches()) * int64(v.HiddenSize) * int64(3*v.PatchSize*v.PatchSize),
		Head:  int64(v.HiddenSize) * int64(c.ProjectionDim),
	}
	for l := 0; l < v.NumHiddenLayers; l++ {
		m.Layers = append(m.Layers, LayerMACs(T, v.HiddenSize, v.Heads(l), v.HeadDim(), v.Intermediate(l)))
	}
	return m
}

// TextMACs counts one text of T tokens (the context length when T <= 0)
// through the text tower and projection.
func (c *Config) TextMACs(T int) MACs {
	t := &c.Text
	if T <= 0 {
		T = t.MaxPositionEmbeddings
	}
	m := MACs{Head: int64(t.HiddenSize) * int64(c.ProjectionDim)}
	for l := 0; l < t.NumHiddenLayers; l++ {
		m.Layers = append(m.Layers, LayerMACs(T, t.HiddenSize, t.Heads(l), t.HeadDim(), t.Intermediate(l)))
	}
	return m
}
