package clip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/nn"
	"github.com/mopeclip/mopeclip/tensor"
)

// File names of a Hugging Face CLIP model directory.
const (
	ConfigFile      = "config.json"
	WeightsFile     = "model.safetensors"
	WeightsIndex    = "model.safetensors.index.json"
	VocabFile       = "vocab.json"
	MergesFile      = "merges.txt"
	preprocessorCfg = "preprocessor_config.json"
)

// shardIndex is model.safetensors.index.json.
type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// readWeights loads every tensor of a model directory: model.safetensors, or
// the shards named by model.safetensors.index.json.
func readWeights(dir string) (map[string]*safetensors.Tensor, error) {
	single := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(single); err == nil {
		f, err := safetensors.Load(single)
		if err != nil {
			return nil, err
		}
		return f.Tensors, nil
	}
	idxPath := filepath.Join(dir, WeightsIndex)
	data, err := os.ReadFile(idxPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no %s or %s", dir, WeightsFile, WeightsIndex)
		}
		return nil, err
	}
	var idx shardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", idxPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: empty weight_map", idxPath)
	}
	shards := map[string]bool{}
	for name, shard := range idx.WeightMap {
		if shard == "" || strings.ContainsAny(shard, `/\`) || shard == ".." {
			return nil, fmt.Errorf("%s: tensor %q maps to invalid shard file %q", idxPath, name, shard)
		}
		shards[shard] = true
	}
	names := make([]string, 0, len(shards))
	for s := range shards {
		names = append(names, s)
	}
	sort.Strings(names)
	all := map[string]*safetensors.Tensor{}
	for _, s := range names {
		if _, err := os.Stat(filepath.Join(dir, s)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: shard %s, named for tensor %q (and %d more), does not exist", idxPath, s, firstMappedTo(idx.WeightMap, s), countMappedTo(idx.WeightMap, s)-1)
		}
	}
	for _, s := range names {
		f, err := safetensors.Load(filepath.Join(dir, s))
		if err != nil {
			return nil, err
		}
		for n, t := range f.Tensors {
			want, listed := idx.WeightMap[n]
			if !listed {
				return nil, fmt.Errorf("%s: tensor %q is not in %s", s, n, WeightsIndex)
			}
			if want != s {
				return nil, fmt.Errorf("%s: tensor %q found in %s but the index says %s", dir, n, s, want)
			}
			all[n] = t
		}
	}
	for n, s := range idx.WeightMap {
		if _, ok := all[n]; !ok {
			return nil, fmt.Errorf("%s: tensor %q listed in %s is missing from %s", dir, n, WeightsIndex, s)
		}
	}
	return all, nil
}

var layerRe = regexp.MustCompile(`^(vision_model|text_model)\.encoder\.layers\.(\d+)\.`)

// inferWidths sets the per-layer head counts and MLP widths of cfg from the
// tensor shapes, so pruned checkpoints load even when their config.json
// lacks mopeclip's extra keys. The layer count must match num_hidden_layers.
func inferWidths(cfg *Config, tensors map[string]*safetensors.Tensor) error {
	maxLayer := map[string]int{"vision_model": -1, "text_model": -1}
	for name := range tensors {
		if m := layerRe.FindStringSubmatch(name); m != nil {
			l, err := strconv.Atoi(m[2])
			if err != nil || l > 1000 {
				return fmt.Errorf("tensor %q: bad layer index", name)
			}
			maxLayer[m[1]] = max(maxLayer[m[1]], l)
		}
	}
	for _, tw := range []struct {
		prefix string
		t      *TowerConfig
	}{{"vision_model", &cfg.Vision}, {"text_model", &cfg.Text}} {
		n := maxLayer[tw.prefix] + 1
		if n == 0 {
			return fmt.Errorf("no %s.encoder.layers.* tensors", tw.prefix)
		}
		// Depth is not inferred: num_hidden_layers is a standard key that
		// every pruning tool updates, so a layer short of it is a missing
		// tensor, not a shallower model.
		t := tw.t
		if n < t.NumHiddenLayers {
			return fmt.Errorf("missing tensor %q (config has %d %s layers, the weights %d)",
				fmt.Sprintf("%s.encoder.layers.%d.layer_norm1.weight", tw.prefix, n), t.NumHiddenLayers, tw.prefix, n)
		}
		if n > t.NumHiddenLayers {
			var extra []string
			for name := range tensors {
				if m := layerRe.FindStringSubmatch(name); m != nil && m[1] == tw.prefix {
					if l, _ := strconv.Atoi(m[2]); l >= t.NumHiddenLayers {
						extra = append(extra, name)
					}
				}
			}
			sort.Strings(extra)
			return fmt.Errorf("unexpected tensor %q (config has %d %s layers, the weights %d)", extra[0], t.NumHiddenLayers, tw.prefix, n)
		}
		hd := t.HeadDim()
		heads := make([]int, n)
		inter := make([]int, n)
		uniform := true
		for l := 0; l < n; l++ {
			p := fmt.Sprintf("%s.encoder.layers.%d.", tw.prefix, l)
			// A layer whose heads (or MLP units) were all pruned has no
			// self_attn (mlp) tensors, only its layer norms: width 0.
			if _, ok := tensors[p+"layer_norm1.weight"]; !ok {
				return fmt.Errorf("missing tensor %q", p+"layer_norm1.weight")
			}
			if q, ok := tensors[p+"self_attn.q_proj.weight"]; ok {
				if len(q.Shape) != 2 || q.Shape[0]%hd != 0 {
					return fmt.Errorf("tensor %q has shape %v: rows not a multiple of head dim %d", p+"self_attn.q_proj.weight", q.Shape, hd)
				}
				heads[l] = q.Shape[0] / hd
			} else if other := firstWithPrefix(tensors, p+"self_attn."); other != "" {
				return fmt.Errorf("missing tensor %q (the layer has %q)", p+"self_attn.q_proj.weight", other)
			}
			if fc1, ok := tensors[p+"mlp.fc1.weight"]; ok {
				if len(fc1.Shape) != 2 {
					return fmt.Errorf("tensor %q has shape %v, want 2-D", p+"mlp.fc1.weight", fc1.Shape)
				}
				inter[l] = fc1.Shape[0]
			} else if other := firstWithPrefix(tensors, p+"mlp."); other != "" {
				return fmt.Errorf("missing tensor %q (the layer has %q)", p+"mlp.fc1.weight", other)
			}
			if heads[l] > t.NumAttentionHeads {
				return fmt.Errorf("tensor %q has %d heads, more than num_attention_heads %d", p+"self_attn.q_proj.weight", heads[l], t.NumAttentionHeads)
			}
			if heads[l] != t.NumAttentionHeads || inter[l] != t.IntermediateSize {
				uniform = false
			}
		}
		if len(t.TeacherLayers) > 0 && len(t.TeacherLayers) != n {
			return fmt.Errorf("%s has %d layers but config lists %d teacher layers", tw.prefix, n, len(t.TeacherLayers))
		}
		t.NumHiddenLayers = n
		if uniform {
			t.LayerHeads, t.LayerIntermediate = nil, nil
		} else {
			t.LayerHeads, t.LayerIntermediate = heads, inter
		}
	}
	return cfg.Validate()
}

// firstWithPrefix returns the first name (in sorted order) of tensors that
// starts with prefix, or "".
func firstWithPrefix(tensors map[string]*safetensors.Tensor, prefix string) string {
	first := ""
	for name := range tensors {
		if strings.HasPrefix(name, prefix) && (first == "" || name < first) {
			first = name
		}
	}
	return first
}

// assignParams moves the loaded tensors into params (F32 data is adopted
// without a copy). Missing, mis-shaped and unexpected tensors are errors that
// name the tensor; position_ids buffers are ignored.
func assignParams(params []*nn.Param, tensors map[string]*safetensors.Tensor) error {
	used := make(map[string]bool, len(params))
	for _, p := range params {
		t, ok := tensors[p.Name]
		if !ok {
			return fmt.Errorf("missing tensor %q (shape %v)", p.Name, p.Value.Shape)
		}
		if !t.DType.IsFloat() {
			return fmt.Errorf("tensor %q has dtype %s, want a float type", p.Name, t.DType)
		}
		if !sameShape(t.Shape, p.Value.Shape) {
			return fmt.Errorf("tensor %q has shape %v, want %v", p.Name, t.Shape, p.Value.Shape)
		}
		p.Value.Data = t.F32
		used[p.Name] = true
	}
	var extra []string
	for n := range tensors {
		if !used[n] && !strings.HasSuffix(n, "position_ids") {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], fmt.Sprintf("... (%d in all)", len(extra)))
		}
		return fmt.Errorf("unexpected tensors: %s", strings.Join(extra, ", "))
	}
	return nil
}

// sameShape compares shapes, treating [] and [1] alike (HF stores logit_scale
// as a 0-d tensor).
func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		na, nb := 1, 1
		for _, d := range a {
			na *= d
		}
		for _, d := range b {
			nb *= d
		}
		return na == 1 && nb == 1
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Load reads a model directory: Hugging Face's layout (config.json plus
// model.safetensors or sharded weights) or open_clip's
// (open_clip_config.json plus open_clip_model.safetensors), whichever the
// directory holds. Per-layer widths of pruned models are inferred from the
// tensor shapes; every tensor is checked against the config before the
// model is allocated, and for non-finite values after. F16/BF16 weights
// become float32. Config warnings are in m.Notes (see
// ConfigNotes.Warning); Load prints nothing.
func Load(dir string) (*Model, error) {
	layout, err := DetectLayout(dir)
	if err != nil {
		return nil, err
	}
	if layout == LayoutOpenCLIP {
		return loadOpenCLIP(dir)
	}
	cfg, notes, err := LoadConfigNotes(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	tensors, err := readWeights(dir)
	if err != nil {
		return nil, err
	}
	notes.Layout = LayoutHF
	m, err := buildModel(dir, cfg, notes, tensors)
	if err != nil {
		return nil, err
	}
	pc, err := LoadPreprocess(dir)
	if err != nil {
		return nil, err
	}
	m.Preprocess = &pc
	return m, nil
}

// buildModel checks tensors against cfg, then builds the model around them.
func buildModel(dir string, cfg *Config, notes ConfigNotes, tensors map[string]*safetensors.Tensor) (*Model, error) {
	if err := inferWidths(cfg, tensors); err != nil {
		return nil, fmt.Errorf("%s: %w%s", dir, err, defaultsHint(notes))
	}
	if err := checkShapes(cfg, notes, tensors); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m, err := newModel(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := assignParams(m.Params(), tensors); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := checkFinite(m.Params()); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.Notes = notes
	return m, nil
}

// DetectLayout says which checkpoint layout dir holds: Hugging Face's when
// it has config.json, open_clip's when it has open_clip_config.json. A
// directory with neither is an error that says what was looked for.
func DetectLayout(dir string) (Layout, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("model: %s does not exist (a model directory holds %s or %s)", dir, ConfigFile, OpenCLIPConfigFile)
	}
	if err != nil {
		return 0, fmt.Errorf("model: %w", err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("model: %s is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return LayoutHF, nil
	}
	if _, err := os.Stat(filepath.Join(dir, OpenCLIPConfigFile)); err == nil {
		return LayoutOpenCLIP, nil
	}
	return 0, fmt.Errorf("model: %s has neither %s (Hugging Face) nor %s (open_clip)", dir, ConfigFile, OpenCLIPConfigFile)
}

var _ = tensor.New

// firstMappedTo returns the first tensor (sorted) the index maps to shard.
func firstMappedTo(weightMap map[string]string, shard string) string {
	first := ""
	for n, s := range weightMap {
		if s == shard && (first == "" || n < first) {
			first = n
		}
	}
	return first
}

// countMappedTo counts the tensors the index maps to shard.
func countMappedTo(weightMap map[string]string, shard string) int {
	n := 0
	for _, s := range weightMap {
		if s == shard {
			n++
		}
	}
	return n
}
