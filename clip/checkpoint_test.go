package clip

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

// tinyModel returns a random tiny model whose biases and layer-norm
// parameters are random too (New leaves them at 0 and 1), so that tests
// notice when one is dropped or misplaced.
func tinyModel(t *testing.T, seed uint64) *Model {
	t.Helper()
	cfg, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(seed + 1000)
	for _, p := range m.Params() {
		if strings.HasSuffix(p.Name, ".bias") || strings.Contains(p.Name, "norm") {
			for i := range p.Value.Data {
				p.Value.Data[i] += float32(0.1 * rng.NormFloat64())
			}
		}
	}
	return m
}

// saved writes m to a fresh directory.
func saved(t *testing.T, m *Model) string {
	t.Helper()
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readST reads dir/model.safetensors.
func readST(t *testing.T, dir string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Load(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func writeST(t *testing.T, path string, f *safetensors.File) {
	t.Helper()
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
}

// testInputs returns fixed pixels [2,3,S,S] and a text batch of 3 rows.
func testInputs(cfg *Config) (*ops.Var, *TextBatch) {
	rng := tensor.NewRNG(5)
	S := cfg.Vision.ImageSize
	pix := ops.Const(tensor.New(2, 3, S, S).Normal(rng, 0, 1))
	return pix, randomTextBatch(rng, 3, 20, cfg.Text.VocabSize, cfg.Text.EOSTokenID)
}

func embeddings(m *Model) (img, txt []float32) {
	pix, tb := testInputs(m.Config)
	return m.EncodeImage(nil, pix).Value.Data, m.EncodeText(nil, tb).Value.Data
}

func sameBitsF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestSaveLoadRoundTripIsBitIdentical(t *testing.T) {
	m := tinyModel(t, 1)
	dir := saved(t, m)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Config, m.Config) {
		t.Fatalf("config changed:\n got %+v\nwant %+v", got.Config, m.Config)
	}
	ps, qs := m.Params(), got.Params()
	if len(ps) != len(qs) {
		t.Fatalf("%d params, want %d", len(qs), len(ps))
	}
	for i := range ps {
		if ps[i].Name != qs[i].Name || !slices.Equal(ps[i].Value.Shape, qs[i].Value.Shape) || !sameBitsF32(ps[i].Value.Data, qs[i].Value.Data) {
			t.Fatalf("param %s changed through Save/Load", ps[i].Name)
		}
	}
	wi, wt := embeddings(m)
	gi, gt := embeddings(got)
	if !sameBitsF32(wi, gi) || !sameBitsF32(wt, gt) {
		t.Fatal("embeddings of the reloaded model differ")
	}
	// Saving the loaded model again writes the same bytes.
	dir2 := saved(t, got)
	for _, name := range []string{ConfigFile, WeightsFile} {
		a, _ := os.ReadFile(filepath.Join(dir, name))
		b, _ := os.ReadFile(filepath.Join(dir2, name))
		if string(a) != string(b) {
			t.Errorf("%s differs after a second Save", name)
		}
	}
}

func TestLoadSharded(t *testing.T) {
	m := tinyModel(t, 2)
	dir := saved(t, m)
	f := readST(t, dir)
	if err := os.Remove(filepath.Join(dir, WeightsFile)); err != nil {
		t.Fatal(err)
	}
	shards := []*safetensors.File{{Metadata: map[string]string{"format": "pt"}}, {Metadata: map[string]string{"format": "pt"}}}
	names := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	idx := shardIndex{Metadata: map[string]any{"total_size": 0}, WeightMap: map[string]string{}}
	for i, n := range f.Names {
		s := i % 2
		if strings.HasPrefix(n, "text_model.") {
			s = 1 // uneven shards, like real ones
		}
		shards[s].Add(n, f.Tensors[n])
		idx.WeightMap[n] = names[s]
	}
	for s := range shards {
		writeST(t, filepath.Join(dir, names[s]), shards[s])
	}
	writeIndex := func(idx shardIndex) {
		t.Helper()
		b, _ := json.Marshal(idx)
		if err := os.WriteFile(filepath.Join(dir, WeightsIndex), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeIndex(idx)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Params() {
		if !sameBitsF32(p.Value.Data, got.Params()[i].Value.Data) {
			t.Fatalf("%s differs after a sharded load", p.Name)
		}
	}

	// Index errors name the tensor or the shard.
	bad := shardIndex{WeightMap: map[string]string{}}
	for k, v := range idx.WeightMap {
		bad.WeightMap[k] = v
	}
	moved := "text_model.final_layer_norm.bias" // in shard 2
	bad.WeightMap[moved] = names[0]
	writeIndex(bad)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), moved) {
		t.Errorf("tensor in the wrong shard: %v", err)
	}
	bad.WeightMap[moved] = names[1]
	bad.WeightMap["extra.weight"] = names[1]
	writeIndex(bad)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "extra.weight") {
		t.Errorf("index lists a tensor no shard has: %v", err)
	}
	delete(bad.WeightMap, "extra.weight")
	bad.WeightMap["logit_scale"] = "model-00003-of-00002.safetensors"
	writeIndex(bad)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "model-00003-of-00002.safetensors") ||
		!strings.Contains(err.Error(), `"logit_scale"`) || !strings.Contains(err.Error(), WeightsIndex) {
		t.Errorf("missing shard file: %v", err)
	}
	bad.WeightMap["logit_scale"] = "../model.safetensors"
	writeIndex(bad)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "logit_scale") {
		t.Errorf("shard path outside the directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, WeightsIndex), []byte(`{"weight_map": `), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), WeightsIndex) {
		t.Errorf("truncated index: %v", err)
	}
}

// TestLoadTensorErrorsNameTheTensor edits a saved checkpoint in the ways a
// wrong or damaged file can differ, and checks the error names the tensor.
func TestLoadTensorErrorsNameTheTensor(t *testing.T) {
	m := tinyModel(t, 3)
	src := saved(t, m)
	cases := []struct {
		name string
		edit func(f *safetensors.File)
		want string
	}{
		{"missing", func(f *safetensors.File) { deleteTensor(f, "text_projection.weight") }, "text_projection.weight"},
		{"missing bias", func(f *safetensors.File) {
			deleteTensor(f, "vision_model.encoder.layers.1.self_attn.k_proj.bias")
		}, "vision_model.encoder.layers.1.self_attn.k_proj.bias"},
		{"missing q_proj", func(f *safetensors.File) {
			deleteTensor(f, "text_model.encoder.layers.0.self_attn.q_proj.weight")
		}, "text_model.encoder.layers.0.self_attn.q_proj.weight"},
		{"missing last layer", func(f *safetensors.File) {
			for _, n := range slices.Clone(f.Names) {
				if strings.HasPrefix(n, "vision_model.encoder.layers.1.") {
					deleteTensor(f, n)
				}
			}
		}, "vision_model.encoder.layers.1."},
		{"unexpected", func(f *safetensors.File) {
			f.Add("vision_model.extra.weight", &safetensors.Tensor{DType: safetensors.F32, Shape: []int{2}, F32: []float32{1, 2}})
		}, "vision_model.extra.weight"},
		{"unexpected layer", func(f *safetensors.File) {
			f.Add("text_model.encoder.layers.2.mlp.fc1.bias", &safetensors.Tensor{DType: safetensors.F32, Shape: []int{2}, F32: []float32{1, 2}})
		}, "text_model.encoder.layers.2.mlp.fc1.bias"},
		{"mis-shaped", func(f *safetensors.File) {
			reshape(f, "vision_model.post_layernorm.weight", 32, 2)
		}, "vision_model.post_layernorm.weight"},
		{"mis-shaped projection", func(f *safetensors.File) {
			reshape(f, "visual_projection.weight", 64, 32)
		}, "visual_projection.weight"},
		{"mis-shaped k_proj", func(f *safetensors.File) {
			tt := f.Tensors["text_model.encoder.layers.1.self_attn.k_proj.weight"]
			tt.Shape, tt.F32 = []int{36, 48}, tt.F32[:36*48]
		}, "text_model.encoder.layers.1.self_attn.k_proj.weight"},
		{"mis-shaped fc2", func(f *safetensors.File) {
			tt := f.Tensors["vision_model.encoder.layers.0.mlp.fc2.weight"]
			tt.Shape, tt.F32 = []int{64, 128}, tt.F32[:64*128]
		}, "vision_model.encoder.layers.0.mlp.fc2.weight"},
		{"integer dtype", func(f *safetensors.File) {
			f.Tensors["logit_scale"] = &safetensors.Tensor{DType: safetensors.I64, I64: []int64{3}}
		}, "logit_scale"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(src, ConfigFile), filepath.Join(dir, ConfigFile))
			f := readST(t, src)
			c.edit(f)
			writeST(t, filepath.Join(dir, WeightsFile), f)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not name %s: %v", c.want, err)
			}
			t.Log(err)
		})
	}
}

func deleteTensor(f *safetensors.File, name string) {
	delete(f.Tensors, name)
	f.Names = slices.DeleteFunc(f.Names, func(n string) bool { return n == name })
}

func reshape(f *safetensors.File, name string, shape ...int) {
	f.Tensors[name].Shape = shape
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadHalfPrecision(t *testing.T) {
	m := tinyModel(t, 4)
	src := saved(t, m)
	wantImg, wantTxt := embeddings(m)
	for _, c := range []struct {
		dt    safetensors.DType
		round func(float32) float32
		tol   float64
	}{
		{safetensors.F16, func(v float32) float32 { return safetensors.F16ToFloat32(safetensors.Float32ToF16(v)) }, 2e-2},
		{safetensors.BF16, func(v float32) float32 { return safetensors.BF16ToFloat32(safetensors.Float32ToBF16(v)) }, 1e-1},
	} {
		t.Run(string(c.dt), func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, filepath.Join(src, ConfigFile), filepath.Join(dir, ConfigFile))
			f := readST(t, src)
			for _, tt := range f.Tensors {
				tt.DType = c.dt
			}
			writeST(t, filepath.Join(dir, WeightsFile), f)
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Each value is the float32 value rounded to the half type.
			for i, p := range m.Params() {
				q := got.Params()[i]
				for j, v := range p.Value.Data {
					if w := c.round(v); math.Float32bits(q.Value.Data[j]) != math.Float32bits(w) {
						t.Fatalf("%s[%d] = %v, want %v (%v rounded to %s)", p.Name, j, q.Value.Data[j], w, v, c.dt)
					}
				}
			}
			gi, gt := embeddings(got)
			ei, et := relErr(gi, wantImg), relErr(gt, wantTxt)
			t.Logf("%s: embeddings within %.1e (image) and %.1e (text) of float32", c.dt, ei, et)
			if !(ei < c.tol && et < c.tol) {
				t.Errorf("%s embeddings too far from float32: %.3e, %.3e", c.dt, ei, et)
			}
		})
	}
}

// pruneSpec keeps, per layer, the listed heads and MLP neurons.
type pruneSpec struct {
	heads   []int
	neurons []int
}

// pruneFile slices the tensors of layer prefix (".../layers.L.") of f to
// the kept heads (head dim d) and neurons.
func pruneFile(f *safetensors.File, prefix string, d int, s pruneSpec) {
	rows := func(name string, keep []int, block int) {
		tt := f.Tensors[prefix+name]
		inner := tt.NumElements() / tt.Shape[0]
		var data []float32
		for _, k := range keep {
			data = append(data, tt.F32[k*block*inner:(k+1)*block*inner]...)
		}
		tt.F32 = data
		tt.Shape = append([]int{len(keep) * block}, tt.Shape[1:]...)
	}
	cols := func(name string, keep []int, block int) {
		tt := f.Tensors[prefix+name]
		r, c := tt.Shape[0], tt.Shape[1]
		var data []float32
		for i := 0; i < r; i++ {
			for _, k := range keep {
				data = append(data, tt.F32[i*c+k*block:i*c+(k+1)*block]...)
			}
		}
		tt.F32 = data
		tt.Shape = []int{r, len(keep) * block}
	}
	// A branch with nothing left has no tensors at all (its layer norm stays).
	if len(s.heads) == 0 {
		for _, n := range slices.Clone(f.Names) {
			if strings.HasPrefix(n, prefix+"self_attn.") {
				deleteTensor(f, n)
			}
		}
	}
	if len(s.neurons) == 0 {
		for _, n := range slices.Clone(f.Names) {
			if strings.HasPrefix(n, prefix+"mlp.") {
				deleteTensor(f, n)
			}
		}
	}
	for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
		if len(s.heads) == 0 {
			break
		}
		rows("self_attn."+p+".weight", s.heads, d)
		rows("self_attn."+p+".bias", s.heads, d)
	}
	if len(s.heads) > 0 {
		cols("self_attn.out_proj.weight", s.heads, d)
	}
	if len(s.neurons) > 0 {
		rows("mlp.fc1.weight", s.neurons, 1)
		rows("mlp.fc1.bias", s.neurons, 1)
		cols("mlp.fc2.weight", s.neurons, 1)
	}
}

// maskModel zeroes, in place, what pruneFile removes, in a way that makes
// the removed heads and neurons contribute exactly nothing: value rows and
// biases of removed heads (their attention output is then 0) and fc1 rows
// and biases of removed neurons (QuickGELU(0) = 0).
func maskModel(m *Model, tower string, layer int, heads, inter int, s pruneSpec, d int) {
	byName := map[string][]float32{}
	for _, p := range m.Params() {
		byName[p.Name] = p.Value.Data
	}
	prefix := fmt.Sprintf("%s.encoder.layers.%d.", tower, layer)
	C := len(byName[prefix+"layer_norm1.weight"])
	for h := 0; h < heads; h++ {
		if slices.Contains(s.heads, h) {
			continue
		}
		clear(byName[prefix+"self_attn.v_proj.weight"][h*d*C : (h+1)*d*C])
		clear(byName[prefix+"self_attn.v_proj.bias"][h*d : (h+1)*d])
	}
	for n := 0; n < inter; n++ {
		if slices.Contains(s.neurons, n) {
			continue
		}
		clear(byName[prefix+"mlp.fc1.weight"][n*C : (n+1)*C])
		byName[prefix+"mlp.fc1.bias"][n] = 0
	}
	// A removed branch loses its output bias too.
	if len(s.heads) == 0 {
		clear(byName[prefix+"self_attn.out_proj.bias"])
	}
	if len(s.neurons) == 0 {
		clear(byName[prefix+"mlp.fc2.bias"])
	}
}

func seq(lo, hi, step int) []int {
	var s []int
	for i := lo; i < hi; i += step {
		s = append(s, i)
	}
	return s
}

// TestLoadPrunedModel slices heads and MLP neurons out of a saved tiny
// model (unevenly per layer; in the second case an attention and an MLP
// are removed whole), loads it with a config.json that knows nothing about
// it, and checks the inferred widths and that the pruned model computes
// what the full model computes with those heads and neurons silenced.
func TestLoadPrunedModel(t *testing.T) {
	cases := []struct {
		name         string
		vision, text []pruneSpec
		vHeads, vMLP []int
		tHeads, tMLP []int
	}{
		{"uneven",
			[]pruneSpec{{heads: []int{0, 2}, neurons: seq(0, 256, 3)}, {heads: []int{1, 2, 3}, neurons: seq(10, 74, 1)}},
			[]pruneSpec{{heads: []int{3}, neurons: seq(5, 192, 4)}, {heads: []int{0, 1, 2, 3}, neurons: seq(0, 50, 1)}},
			[]int{2, 3}, []int{86, 64}, []int{1, 4}, []int{47, 50}},
		{"whole branches",
			[]pruneSpec{{heads: nil, neurons: seq(0, 256, 2)}, {heads: []int{0, 1, 2, 3}, neurons: seq(0, 256, 1)}},
			[]pruneSpec{{heads: []int{1}, neurons: nil}, {heads: []int{0, 3}, neurons: seq(0, 192, 1)}},
			[]int{0, 4}, []int{128, 256}, []int{1, 2}, []int{0, 192}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkPruned(t, map[string][]pruneSpec{"vision_model": c.vision, "text_model": c.text}, c.vHeads, c.vMLP, c.tHeads, c.tMLP)
		})
	}
}

func checkPruned(t *testing.T, specs map[string][]pruneSpec, vHeads, vMLP, tHeads, tMLP []int) {
	m := tinyModel(t, 5)
	src := saved(t, m)
	cfg := m.Config
	f := readST(t, src)
	for tower, ls := range specs {
		tc := &cfg.Vision
		if tower == "text_model" {
			tc = &cfg.Text
		}
		d := tc.HeadDim()
		for l, s := range ls {
			pruneFile(f, fmt.Sprintf("%s.encoder.layers.%d.", tower, l), d, s)
			maskModel(m, tower, l, tc.NumAttentionHeads, tc.IntermediateSize, s, d)
		}
	}
	dir := t.TempDir()
	copyFile(t, filepath.Join(src, ConfigFile), filepath.Join(dir, ConfigFile)) // the unpruned config
	writeST(t, filepath.Join(dir, WeightsFile), f)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, tx := got.Config.Vision, got.Config.Text
	if !slices.Equal(v.LayerHeads, vHeads) || !slices.Equal(v.LayerIntermediate, vMLP) ||
		!slices.Equal(tx.LayerHeads, tHeads) || !slices.Equal(tx.LayerIntermediate, tMLP) {
		t.Fatalf("inferred widths: vision heads %v mlp %v, text heads %v mlp %v", v.LayerHeads, v.LayerIntermediate, tx.LayerHeads, tx.LayerIntermediate)
	}
	wi, wt := embeddings(m)
	gi, gt := embeddings(got)
	ei, et := relErr(gi, wi), relErr(gt, wt)
	t.Logf("pruned vs masked full model: relative error %.2e (image), %.2e (text)", ei, et)
	if !(ei < 1e-5 && et < 1e-5) {
		t.Fatalf("pruned model differs from the masked full model: %.3e, %.3e", ei, et)
	}
	_, _, total := got.NumParams()
	_, _, full := m.NumParams()
	if !(total < full) {
		t.Fatalf("pruned model has %d params, full %d", total, full)
	}

	// Saving writes the widths to config.json; it reloads the same.
	dir2 := saved(t, got)
	raw, _ := os.ReadFile(filepath.Join(dir2, ConfigFile))
	for _, key := range []string{"mopeclip_layer_heads", "mopeclip_layer_intermediate"} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("config.json of the pruned model has no %s", key)
		}
	}
	again, err := Load(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Config, got.Config) {
		t.Fatalf("config changed through Save/Load:\n got %+v\nwant %+v", again.Config, got.Config)
	}
	ai, at := embeddings(again)
	if !sameBitsF32(ai, gi) || !sameBitsF32(at, gt) {
		t.Fatal("reloaded pruned model computes something else")
	}
}

func TestLoadCorruptFiles(t *testing.T) {
	m := tinyModel(t, 6)
	src := saved(t, m)
	weights, _ := os.ReadFile(filepath.Join(src, WeightsFile))
	config, _ := os.ReadFile(filepath.Join(src, ConfigFile))
	cases := []struct {
		name            string
		config, weights []byte // nil: leave the file out
		want            string
	}{
		{"truncated weights", config, weights[:len(weights)/2], WeightsFile},
		{"short weights", config, weights[:5], WeightsFile},
		{"garbage header", config, append([]byte{200, 0, 0, 0, 0, 0, 0, 0}, []byte("{not json")...), WeightsFile},
		{"empty weights", config, []byte{}, WeightsFile},
		{"no weights", config, nil, WeightsIndex},
		{"no config", nil, weights, ConfigFile},
		{"truncated config", config[:len(config)/2], weights, ConfigFile},
		{"config of another model", []byte(strings.Replace(string(config), `"hidden_size": 64`, `"hidden_size": 128`, 1)), weights, "shape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.config != nil {
				os.WriteFile(filepath.Join(dir, ConfigFile), c.config, 0o644)
			}
			if c.weights != nil {
				os.WriteFile(filepath.Join(dir, WeightsFile), c.weights, 0o644)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not mention %s: %v", c.want, err)
			}
			t.Log(err)
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("missing directory loaded")
	}
}
