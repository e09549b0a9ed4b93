package export

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/internal/ortnode"
	"github.com/mopeclip/mopeclip/internal/testutil"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// prunedCases are the EOS conventions and activations the pruned test
// models come in (prunedConfig).
var prunedCases = []struct {
	name string
	eos  int
	act  string
}{{"eos-first-gelu", 497, "gelu"}, {"eos2-legacy-quickgelu", 2, "quick_gelu"}}

// prunedConfig is a small CLIP with uneven per-layer widths: layers with
// every head or every neuron removed, odd widths, and a text tower with a
// different activation. eos selects the text pooling rule (2: legacy argmax).
func prunedConfig(eos int, act string) *clip.Config {
	c, _ := clip.Preset("tiny")
	v, t := &c.Vision, &c.Text
	v.NumHiddenLayers, v.LayerHeads, v.LayerIntermediate = 3, []int{4, 1, 0}, []int{256, 7, 33}
	t.NumHiddenLayers, t.LayerHeads, t.LayerIntermediate = 3, []int{2, 0, 3}, []int{0, 100, 65}
	t.HiddenAct = act
	// With eos 2 (legacy argmax pooling) the end-of-text token is 499, the largest id.
	t.VocabSize, t.MaxPositionEmbeddings, t.EOSTokenID, t.BOSTokenID = 500, 16, eos, 498
	return c
}

// randomModel returns a model of cfg whose every parameter (biases and
// layer-norm weights included) is random, so that no term vanishes by
// accident.
func randomModel(t *testing.T, cfg *clip.Config, seed uint64) *clip.Model {
	t.Helper()
	m, err := clip.New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(seed + 1)
	for _, p := range m.Params() {
		switch {
		case strings.HasSuffix(p.Name, "norm1.weight"), strings.HasSuffix(p.Name, "norm2.weight"),
			strings.HasSuffix(p.Name, "layrnorm.weight"), strings.HasSuffix(p.Name, "layernorm.weight"),
			strings.HasSuffix(p.Name, "layer_norm.weight"):
			p.Value.Normal(rng, 1, 0.2)
		case strings.HasSuffix(p.Name, ".bias"):
			p.Value.Normal(rng, 0, 0.1)
		case strings.HasSuffix(p.Name, "weight") && len(p.Value.Shape) == 2 && !strings.Contains(p.Name, "embedding"):
			p.Value.Normal(rng, 0, 1/math.Sqrt(float64(p.Value.Shape[1])))
		}
	}
	return m
}

// textRows returns B rows of T ids: BOS, random ids, EOT at varied
// positions, then padding after EOT with random ids (not EOT; for the legacy
// rule, smaller than EOT), and the same rows zero-padded to the context.
func textRows(rng *tensor.RNG, cfg *clip.TowerConfig, B, T int) (padded, full *clip.TextBatch) {
	eot := cfg.EOSTokenID
	if eot == 2 {
		eot = cfg.VocabSize - 1
	}
	ctx := cfg.MaxPositionEmbeddings
	padded = &clip.TextBatch{IDs: make([]int, B*T), B: B, T: T}
	full = &clip.TextBatch{IDs: make([]int, B*ctx), B: B, T: ctx}
	for b := 0; b < B; b++ {
		n := 2 + (b*5)%(T-1) // tokens up to and including EOT
		row := padded.IDs[b*T : (b+1)*T]
		for j := range row {
			id := 3 + rng.IntN(cfg.VocabSize-6)
			switch {
			case j == 0:
				id = cfg.BOSTokenID
			case j == n-1:
				id = eot
			}
			row[j] = id
		}
		copy(full.IDs[b*ctx:], row[:n])
	}
	padded.EOTPos = clip.EOTPositions(padded.IDs, B, T, cfg.EOSTokenID)
	full.EOTPos = clip.EOTPositions(full.IDs, B, ctx, cfg.EOSTokenID)
	return padded, full
}

func TestFormatParseString(t *testing.T) {
	for _, f := range []Format{HF, ONNX} {
		g, err := ParseFormat(f.String())
		if err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), g, err)
		}
	}
	for _, bad := range []string{"", "onnx2", "torch"} {
		if _, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) accepted", bad)
		}
	}
}

// TestDenseMatchesPruned: the zero-padded model computes what the pruned
// one does, has one width per tower and every tensor in the shape
// transformers' CLIPModel allocates for its config.
func TestDenseMatchesPruned(t *testing.T) {
	for _, tc := range prunedCases {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, prunedConfig(tc.eos, tc.act), 3)
			d, err := Dense(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, tw := range []*clip.TowerConfig{&d.Config.Vision, &d.Config.Text} {
				if tw.LayerHeads != nil || tw.LayerIntermediate != nil || tw.TeacherLayers != nil || tw.NumHiddenLayers != 3 {
					t.Fatalf("padded tower config %+v", tw)
				}
			}
			if d.Config.Vision.IntermediateSize != 256 || d.Config.Text.IntermediateSize != 100 {
				t.Errorf("intermediate sizes %d, %d; want the widest layers 256, 100", d.Config.Vision.IntermediateSize, d.Config.Text.IntermediateSize)
			}
			js, _ := d.Config.JSON()
			if strings.Contains(string(js), "mopeclip") {
				t.Errorf("padded config has mopeclip keys:\n%s", js)
			}
			checkHFShapes(t, d)
			rng := tensor.NewRNG(5)
			S := m.Config.Vision.ImageSize
			pix := tensor.New(3, 3, S, S).Normal(rng, 0, 1)
			tb, _ := textRows(rng, &m.Config.Text, 4, 9)
			for _, c := range []struct {
				name      string
				got, want []float32
			}{
				{"image", d.EncodeImage(nil, ops.Const(pix)).Value.Data, m.EncodeImage(nil, ops.Const(pix)).Value.Data},
				{"text", d.EncodeText(nil, tb).Value.Data, m.EncodeText(nil, tb).Value.Data},
			} {
				e := testutil.MaxRelErr(c.got, c.want)
				t.Logf("%s: padded vs pruned relative error %.2e", c.name, e)
				if !(e <= 1e-5) {
					t.Errorf("%s: padded model differs from the pruned one: %.3e > 1e-5", c.name, e)
				}
			}
		})
	}
}

// checkHFShapes compares every tensor with the shape Hugging Face's
// CLIPModel gives it for the config (num_attention_heads·head_dim =
// hidden_size for q/k/v/out_proj, intermediate_size for fc1/fc2).
func checkHFShapes(t *testing.T, m *clip.Model) {
	t.Helper()
	want := map[string][]int{}
	for _, tw := range []struct {
		prefix string
		c      *clip.TowerConfig
	}{{"vision_model", &m.Config.Vision}, {"text_model", &m.Config.Text}} {
		C, I := tw.c.HiddenSize, tw.c.IntermediateSize
		for l := 0; l < tw.c.NumHiddenLayers; l++ {
			p := tw.prefix + ".encoder.layers." + strconv.Itoa(l) + "."
			for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
				want[p+"self_attn."+n+".weight"] = []int{C, C}
				want[p+"self_attn."+n+".bias"] = []int{C}
			}
			want[p+"mlp.fc1.weight"], want[p+"mlp.fc1.bias"] = []int{I, C}, []int{I}
			want[p+"mlp.fc2.weight"], want[p+"mlp.fc2.bias"] = []int{C, I}, []int{C}
		}
	}
	seen := 0
	for _, p := range m.Params() {
		w, ok := want[p.Name]
		if !ok {
			continue
		}
		seen++
		if !sameShape(w, p.Value.Shape) {
			t.Errorf("%s: shape %v, transformers allocates %v", p.Name, p.Value.Shape, w)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d layer tensors present", seen, len(want))
	}
}

// TestHFExportTorch writes the HF export and runs it through the
// independent PyTorch CLIP of clip/testdata (Hugging Face names, one head
// count per tower from config.json, as transformers reads it).
func TestHFExportTorch(t *testing.T) {
	py := os.Getenv("MOPECLIP_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import torch, numpy").Run(); err != nil {
		if os.Getenv("MOPECLIP_REQUIRE_TORCH") == "1" {
			t.Fatalf("%s cannot import torch, numpy (MOPECLIP_REQUIRE_TORCH=1): %v", py, err)
		}
		t.Skipf("%s cannot import torch, numpy; install python3-torch python3-numpy", py)
	}
	m := randomModel(t, prunedConfig(497, "gelu"), 9)
	src := t.TempDir()
	if err := m.Save(src); err != nil {
		t.Fatal(err)
	}
	m, err := clip.Load(src) // export what a user would load
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hf")
	if _, err := Write(context.Background(), m, out, HF, Options{Source: src}); err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(2)
	S := m.Config.Vision.ImageSize
	pix := tensor.New(2, 3, S, S).Normal(rng, 0, 1)
	_, full := textRows(rng, &m.Config.Text, 3, 9)
	work := t.TempDir()
	pixPath, idsPath := filepath.Join(work, "pix.npy"), filepath.Join(work, "ids.json")
	if err := imageproc.WriteNPY(pixPath, pix.Data, pix.Shape); err != nil {
		t.Fatal(err)
	}
	rows := make([][]int, full.B)
	for b := range rows {
		rows[b] = full.IDs[b*full.T : (b+1)*full.T]
	}
	ids, _ := json.Marshal(map[string]any{"ids": rows})
	if err := os.WriteFile(idsPath, ids, 0o644); err != nil {
		t.Fatal(err)
	}
	imgOut, txtOut := filepath.Join(work, "img.npy"), filepath.Join(work, "txt.npy")
	cmd := exec.Command(py, "../clip/testdata/torch_clip.py", out, pixPath, idsPath, imgOut, txtOut)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("torch reference: %v\n%s", err, b)
	}
	for _, c := range []struct {
		name string
		want []float32
		path string
	}{
		{"image", m.EncodeImage(nil, ops.Const(pix)).Value.Data, imgOut},
		{"text", m.EncodeText(nil, full).Value.Data, txtOut},
	} {
		got, _, err := imageproc.ReadNPY(c.path)
		if err != nil {
			t.Fatal(err)
		}
		e := testutil.MaxRelErr(got, c.want)
		t.Logf("%s: PyTorch on the HF export vs our pruned model: relative error %.2e", c.name, e)
		if !(e <= 1e-5) {
			t.Errorf("%s: HF export in PyTorch differs from the pruned model: %.3e > 1e-5", c.name, e)
		}
	}
}

// requireORT skips (or, with MOPECLIP_REQUIRE_ORT=1, fails) when ONNX
// Runtime is not installed.
func requireORT(t *testing.T) {
	t.Helper()
	if err := ortnode.Available(context.Background()); err != nil {
		if os.Getenv(ortnode.RequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, ortnode.RequireEnv)
		}
		t.Skipf("%v", err)
	}
}

// TestONNXRuntime exports pruned models with uneven layers and runs both
// encoders in ONNX Runtime: outputs within 1e-5 of our forward, rows padded
// after EOT with arbitrary ids give the zero-padded rows' embeddings, and
// the batch axis is dynamic.
func TestONNXRuntime(t *testing.T) {
	requireORT(t)
	for _, tc := range prunedCases {
		t.Run(tc.name, func(t *testing.T) {
			m := randomModel(t, prunedConfig(tc.eos, tc.act), 4)
			out := filepath.Join(t.TempDir(), "onnx")
			s, err := Write(context.Background(), m, out, ONNX, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Vision.Layers != 3 || s.Text.Heads[1] != 0 {
				t.Errorf("summary %+v", s)
			}
			for _, B := range []int{1, 3} {
				rng := tensor.NewRNG(uint64(10 + B))
				S := m.Config.Vision.ImageSize
				pix := tensor.New(B, 3, S, S).Normal(rng, 0, 1)
				padded, full := textRows(rng, &m.Config.Text, B+1, 11)
				in := &ortnode.Inputs{Pixels: pix.Data, PixelsShape: pix.Shape, IDsShape: []int{padded.B, padded.T}}
				for _, id := range padded.IDs {
					in.IDs = append(in.IDs, int64(id))
				}
				got, err := ortnode.Run(context.Background(), out, in)
				if err != nil {
					t.Fatal(err)
				}
				E := m.Config.ProjectionDim
				if !sameShape(got.ImageShape, []int{B, E}) || !sameShape(got.TextShape, []int{B + 1, E}) {
					t.Fatalf("output shapes %v %v", got.ImageShape, got.TextShape)
				}
				for _, c := range []struct {
					name      string
					got, want []float32
				}{
					{"image", got.ImageEmbeds, m.EncodeImage(nil, ops.Const(pix)).Value.Data},
					{"text (padded after EOT)", got.TextEmbeds, m.EncodeText(nil, padded).Value.Data},
					{"text vs zero-padded full context", got.TextEmbeds, m.EncodeText(nil, full).Value.Data},
				} {
					e := testutil.MaxRelErr(c.got, c.want)
					t.Logf("batch %d %s: ONNX Runtime vs ours relative error %.2e", B, c.name, e)
					if !(e <= 1e-5) {
						t.Errorf("batch %d %s: ONNX Runtime differs: %.3e > 1e-5", B, c.name, e)
					}
				}
			}
			if tc.eos != 2 {
				// A row without eos_token_id pools its last position, as clip.EOTPositions does.
				tb := &clip.TextBatch{IDs: []int{498, 7, 9, 11, 13}, B: 1, T: 5}
				tb.EOTPos = clip.EOTPositions(tb.IDs, 1, 5, tc.eos)
				got, err := ortnode.Run(context.Background(), out, &ortnode.Inputs{IDs: []int64{498, 7, 9, 11, 13}, IDsShape: []int{1, 5}})
				if err != nil {
					t.Fatal(err)
				}
				if e := testutil.MaxRelErr(got.TextEmbeds, m.EncodeText(nil, tb).Value.Data); !(e <= 1e-5) {
					t.Errorf("row without EOT: ONNX Runtime differs: %.3e > 1e-5", e)
				}
			}
		})
	}
}

// TestONNXMaskedModel: a scoring-time masked model (dropped heads, a
// skipped layer) exports through the lowering with the masks resolved into
// smaller shapes, and ONNX Runtime computes what the masked forward does.
func TestONNXMaskedModel(t *testing.T) {
	requireORT(t)
	m := randomModel(t, prunedConfig(497, "quick_gelu"), 6)
	m.Vision.Encoder.Layers[0].SelfAttn.HeadKeep = []bool{true, false, false, true}
	m.Text.Encoder.Layers[2].SelfAttn.HeadKeep = []bool{false, false, false}
	m.Vision.Encoder.Skip = []bool{false, true, false}
	img, err := ImageEncoder(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, init := range img.Graph.Initializers {
		switch init.Name {
		case "vision_model.encoder.layers.0.self_attn.qkv_proj.weight":
			if !sameShape(init.Dims, []int{3 * 2 * 16, 64}) {
				t.Errorf("masked layer 0 qkv %v, want the 2 kept heads", init.Dims)
			}
		case "vision_model.encoder.layers.1.layer_norm2.weight":
			t.Error("skipped layer 1 is in the graph")
		}
	}
	if _, err := Write(context.Background(), m, t.TempDir()+"/hf", HF, Options{}); err == nil {
		t.Error("HF export of a masked model accepted")
	}
	out := filepath.Join(t.TempDir(), "onnx")
	if _, err := Write(context.Background(), m, out, ONNX, Options{}); err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(3)
	S := m.Config.Vision.ImageSize
	pix := tensor.New(2, 3, S, S).Normal(rng, 0, 1)
	padded, _ := textRows(rng, &m.Config.Text, 3, 10)
	in := &ortnode.Inputs{Pixels: pix.Data, PixelsShape: pix.Shape, IDsShape: []int{padded.B, padded.T}}
	for _, id := range padded.IDs {
		in.IDs = append(in.IDs, int64(id))
	}
	got, err := ortnode.Run(context.Background(), out, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{
		{"image", got.ImageEmbeds, m.EncodeImage(nil, ops.Const(pix)).Value.Data},
		{"text", got.TextEmbeds, m.EncodeText(nil, padded).Value.Data},
	} {
		e := testutil.MaxRelErr(c.got, c.want)
		t.Logf("masked %s: ONNX Runtime vs ours relative error %.2e", c.name, e)
		if !(e <= 1e-5) {
			t.Errorf("masked %s: ONNX Runtime differs: %.3e > 1e-5", c.name, e)
		}
	}
}

// TestWriteLeavesNothingOnFailure: a cancelled export leaves no directory
// (and no temporary one) behind, an existing export survives a failed
// replacement, and --out equal to or containing the model is refused.
func TestWriteLeavesNothingOnFailure(t *testing.T) {
	m := randomModel(t, prunedConfig(497, "gelu"), 4)
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, m, out, ONNX, Options{}); err == nil {
		t.Fatal("cancelled export succeeded")
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("failed export left %v behind", entries)
	}
	if _, err := Write(context.Background(), m, out, ONNX, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), m, out, HF, Options{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing --out without Replace: %v", err)
	}
	if _, err := Write(ctx, m, out, HF, Options{Replace: true}); err == nil {
		t.Fatal("cancelled replacement succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, ImageEncoderFile)); err != nil {
		t.Errorf("failed replacement lost the old export: %v", err)
	}
	if _, err := Write(context.Background(), m, out, HF, Options{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, clip.ConfigFile)); err != nil {
		t.Errorf("replacement not in place: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("replacement left %v behind", entries)
	}
	src := filepath.Join(parent, "model")
	for _, bad := range []string{src, parent, src + "/."} {
		if _, err := Write(context.Background(), m, bad, HF, Options{Source: src, Replace: true}); err == nil {
			t.Errorf("--out %s with --model %s accepted", bad, src)
		}
	}
	if _, err := Write(context.Background(), m, out, Format(9), Options{}); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestONNXGraphs: the graphs keep the pruned shapes (fused q/k/v rows =
// 3·kept heads·D, fc1 rows = kept neurons), removed branches are absent, every
// node reads values defined before it, and the one input and output carry a
// dynamic batch axis.
func TestONNXGraphs(t *testing.T) {
	m := randomModel(t, prunedConfig(497, "gelu"), 4)
	img, err := ImageEncoder(m)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := TextEncoder(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mp     *ModelProto
		prefix string
		tower  *clip.TowerConfig
		in     string
		out    string
	}{{img, "vision_model", &m.Config.Vision, PixelValues, ImageEmbeds}, {txt, "text_model", &m.Config.Text, InputIDs, TextEmbeds}} {
		g := tc.mp.Graph
		dims := map[string][]int{}
		defined := map[string]bool{}
		for _, in := range g.Inputs {
			defined[in.Name] = true
		}
		for _, init := range g.Initializers {
			dims[init.Name] = init.Dims
			defined[init.Name] = true
		}
		for _, n := range g.Nodes {
			for _, in := range n.Inputs {
				if !defined[in] {
					t.Errorf("%s: node %s reads %s before it is defined", tc.prefix, n.Name, in)
				}
			}
			for _, o := range n.Outputs {
				defined[o] = true
			}
		}
		if !defined[tc.out] || len(g.Inputs) != 1 || g.Inputs[0].Name != tc.in || g.Inputs[0].Shape[0].Param != "batch" || g.Outputs[0].Shape[0].Param != "batch" {
			t.Errorf("%s: inputs %+v outputs %+v", tc.prefix, g.Inputs, g.Outputs)
		}
		D, C := tc.tower.HeadDim(), tc.tower.HiddenSize
		for l := 0; l < tc.tower.NumHiddenLayers; l++ {
			p := tc.prefix + ".encoder.layers." + strconv.Itoa(l) + "."
			q, hasQ := dims[p+"self_attn.qkv_proj.weight"]
			f, hasF := dims[p+"mlp.fc1.weight"]
			if h := tc.tower.Heads(l); (h == 0) == hasQ || (hasQ && !sameShape(q, []int{3 * h * D, C})) {
				t.Errorf("%s layer %d: fused qkv_proj %v for %d heads", tc.prefix, l, q, h)
			}
			if n := tc.tower.Intermediate(l); (n == 0) == hasF || (hasF && !sameShape(f, []int{n, C})) {
				t.Errorf("%s layer %d: fc1 %v for %d neurons", tc.prefix, l, f, n)
			}
		}
		if _, ok := dims[tc.prefix+".encoder.layers.3.layer_norm1.weight"]; ok {
			t.Errorf("%s: a fourth layer in a 3-layer tower", tc.prefix)
		}
	}
}

// onnxCheck is run by /usr/bin/python3 with the onnx package: the official
// checker with full_check (strict shape inference) on each file, and the
// inferred output shape.
const onnxCheck = `
import sys, onnx
from onnx import checker, shape_inference
for path in sys.argv[1:]:
    m = onnx.load(path)
    checker.check_model(m, full_check=True)
    out = shape_inference.infer_shapes(m, strict_mode=True).graph.output[0]
    print(path, m.ir_version, m.opset_import[0].version, out.name, [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim])
`

// TestONNXChecker runs the onnx package's checker (Debian python3-onnx) on
// both encoders: a second, independent reader of the wire format.
func TestONNXChecker(t *testing.T) {
	py := os.Getenv("MOPECLIP_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import onnx").Run(); err != nil {
		if os.Getenv(ortnode.RequireEnv) == "1" {
			t.Fatalf("%s cannot import onnx (%s=1; install python3-onnx): %v", py, ortnode.RequireEnv, err)
		}
		t.Skipf("%s cannot import onnx; install python3-onnx", py)
	}
	for _, eos := range []int{497, 2} {
		m := randomModel(t, prunedConfig(eos, "gelu"), 4)
		out := filepath.Join(t.TempDir(), "onnx")
		if _, err := Write(context.Background(), m, out, ONNX, Options{}); err != nil {
			t.Fatal(err)
		}
		img, txt := filepath.Join(out, ImageEncoderFile), filepath.Join(out, TextEncoderFile)
		b, err := exec.Command(py, "-c", onnxCheck, img, txt).CombinedOutput()
		if err != nil {
			t.Fatalf("onnx checker: %v\n%s", err, b)
		}
		want := []string{img + " 8 17 image_embeds ['batch', 32]", txt + " 8 17 text_embeds ['batch', 32]"}
		if got := strings.Split(strings.TrimSpace(string(b)), "\n"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("onnx checker says\n%s\nwant\n%s", b, strings.Join(want, "\n"))
		}
	}
}
