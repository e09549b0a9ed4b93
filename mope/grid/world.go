package grid

import (
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/clip/zeroshot"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/dataset/shapes"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/world"
)

// World is the evaluation data: the shapes retrieval test split and the
// single-object classification set.
type World struct {
	Test                   *dataset.Pairs
	Single                 *dataset.Pairs
	ShapeLabel, ColorLabel []int
}

// NewWorld generates n test images (5 captions each) and max(n/2, 10)
// single-object images, at size×size pixels.
func NewWorld(n, size int) (*World, error) {
	cfg := shapes.DefaultConfig()
	test, err := world.Split(cfg, "test", n, size)
	if err != nil {
		return nil, err
	}
	one := cfg
	one.MinObjects, one.MaxObjects = 1, 1
	exs, err := shapes.Generate(one, "test", max(n/2, 10))
	if err != nil {
		return nil, err
	}
	d := &World{Test: test, Single: world.FromExamples(exs, size)}
	for _, e := range exs {
		d.ShapeLabel = append(d.ShapeLabel, int(e.Objects[0].Shape))
		d.ColorLabel = append(d.ColorLabel, int(e.Objects[0].Color))
	}
	return d, nil
}

// Captions is the number of test captions.
func (d *World) Captions() int {
	c, _ := d.Test.Flat()
	return len(c)
}

// Result is one evaluated model (an object of the demo's results.json).
type Result struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	zeroshot.RetrievalMetrics
	// R1 is the mean of TR@1 and IR@1 (the demo's headline recall).
	R1 float64 `json:"r1"`
	// ShapeTop1 and ColorTop1 are zero-shot classification top-1 accuracies
	// (percent) on single-object images.
	ShapeTop1  float64 `json:"shape_top1"`
	ColorTop1  float64 `json:"color_top1"`
	Params     int     `json:"params"`
	VisionPara int     `json:"vision_params"`
	TextParams int     `json:"text_params"`
	// GFLOPs of one image and one text (context length) forward pass.
	ImageGFLOPs float64 `json:"image_gflops"`
	TextGFLOPs  float64 `json:"text_gflops"`
	EvalSeconds float64 `json:"eval_seconds"`
}

// Zero-shot prompts follow the captions' "a single <colour> <shape>"
// template; each class averages its prompts over the other attribute.
func shapePrompts() (classes, templates []string) {
	for _, s := range shapes.AllShapes {
		classes = append(classes, s.String())
	}
	for _, c := range shapes.AllColors {
		templates = append(templates, "a single "+c.String()+" {}")
	}
	return classes, templates
}

func colorPrompts() (classes, templates []string) {
	for _, c := range shapes.AllColors {
		classes = append(classes, c.String())
	}
	for _, s := range shapes.AllShapes {
		templates = append(templates, "a single {} "+s.String())
	}
	return classes, templates
}

// Evaluate measures m on d: retrieval, zero-shot shape and colour
// classification, size and FLOPs. The result's Dir is left empty.
func Evaluate(name string, m *clip.Model, tok *tokenizer.Tokenizer, d *World) (*Result, error) {
	t0 := time.Now()
	enc, done, err := infer.NewEncoder(m, tok)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := world.Retrieval(enc, d.Test)
	if err != nil {
		return nil, err
	}
	res := &Result{Name: name, RetrievalMetrics: r, R1: (r.TR1 + r.IR1) / 2}
	img := clip.Normalize(world.EmbedImages(enc, d.Single.Images))
	for _, task := range []struct {
		prompts func() ([]string, []string)
		labels  []int
		out     *float64
	}{{shapePrompts, d.ShapeLabel, &res.ShapeTop1}, {colorPrompts, d.ColorLabel, &res.ColorTop1}} {
		classes, templates := task.prompts()
		ce, err := enc.ClassEmbeddings(classes, templates)
		if err != nil {
			return nil, err
		}
		logits := clip.Similarity(img, ce)
		*task.out = zeroshot.Classification(logits, d.Single.Len(), len(classes), task.labels).Top1
	}
	cfg := m.Config
	res.VisionPara, res.TextParams, res.Params = m.NumParams()
	res.ImageGFLOPs = cfg.VisionMACs().GFLOPs()
	res.TextGFLOPs = cfg.TextMACs(cfg.Text.MaxPositionEmbeddings).GFLOPs()
	res.EvalSeconds = time.Since(t0).Seconds()
	return res, nil
}
