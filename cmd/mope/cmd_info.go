package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/mope"
)

func init() {
	register(&command{
		name:    "info",
		summary: "print a model's effective config, parameters and GFLOPs per tower and per layer, with heads and MLP widths",
		usage: "--model DIR [--json]\n\n" +
			"  DIR is a Hugging Face CLIP directory (config.json + model.safetensors or shards) or an\n" +
			"  open_clip one (open_clip_config.json + open_clip_model.safetensors).\n" +
			"  The effective config is what the model computes with: keys config.json leaves out take\n" +
			"  transformers' defaults (listed), text_config_dict / vision_config_dict override.\n" +
			"  GFLOPs = 2·MACs: vision per image, text per text at the context length.",
		run: runInfo,
	})
}

// infoLayer is one encoder layer in info's JSON.
type infoLayer struct {
	Layer        int     `json:"layer"`
	TeacherLayer int     `json:"teacher_layer"`
	Heads        int     `json:"heads"`
	MLP          int     `json:"mlp"`
	Params       int     `json:"params"`
	GFLOPs       float64 `json:"gflops"`
}

// infoTower is one tower in info's JSON.
type infoTower struct {
	Layers    int         `json:"num_hidden_layers"`
	Width     int         `json:"hidden_size"`
	HeadDim   int         `json:"head_dim"`
	Tokens    int         `json:"tokens"`
	Params    int         `json:"params"`
	GFLOPs    float64     `json:"gflops"`
	PerLayer  []infoLayer `json:"per_layer"`
	HiddenAct string      `json:"hidden_act"`
}

// infoOutput is what `mope info --json` prints.
type infoOutput struct {
	Model     string          `json:"model"`
	Layout    string          `json:"layout"`
	DType     string          `json:"declared_dtype,omitempty"`
	Params    int             `json:"params"`
	GFLOPs    float64         `json:"gflops"`
	Vision    infoTower       `json:"vision"`
	Text      infoTower       `json:"text"`
	Config    json.RawMessage `json:"effective_config"`
	Defaulted []string        `json:"defaulted_keys"`
	Unknown   []string        `json:"unknown_keys"`
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	c := commands["info"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "")
	asJSON := jsonFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if *model == "" || fl.NArg() > 0 {
		return fmt.Errorf("%w: --model DIR is required (and nothing else)", errUsage)
	}
	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	out, err := describeModel(*model, m)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return printInfo(stdout, out, m.Config)
}

// describeModel gathers what info prints.
func describeModel(dir string, m *clip.Model) (*infoOutput, error) {
	cfg := m.Config
	pv, pt, total := m.NumParams()
	vm, tm := cfg.VisionMACs(), cfg.TextMACs(0)
	raw, err := cfg.JSON()
	if err != nil {
		return nil, err
	}
	out := &infoOutput{Model: dir, Layout: m.Notes.Layout.String(), DType: m.Notes.DType, Params: total,
		GFLOPs: vm.GFLOPs() + tm.GFLOPs(), Config: raw,
		Defaulted: append([]string{}, m.Notes.Defaulted...), Unknown: append([]string{}, m.Notes.Unknown...)}
	out.Vision = describeTower(&cfg.Vision, pv, vm, cfg.Vision.NumPatches()+1)
	out.Text = describeTower(&cfg.Text, pt, tm, cfg.Text.MaxPositionEmbeddings)
	return out, nil
}

func describeTower(t *clip.TowerConfig, params int, macs clip.MACs, tokens int) infoTower {
	tw := infoTower{Layers: t.NumHiddenLayers, Width: t.HiddenSize, HeadDim: t.HeadDim(), Tokens: tokens,
		Params: params, GFLOPs: macs.GFLOPs(), HiddenAct: t.HiddenAct, PerLayer: []infoLayer{}}
	for l := 0; l < t.NumHiddenLayers; l++ {
		tw.PerLayer = append(tw.PerLayer, infoLayer{Layer: l, TeacherLayer: t.TeacherLayer(l), Heads: t.Heads(l),
			MLP: t.Intermediate(l), Params: mope.LayerParams(t, l), GFLOPs: 2 * float64(macs.Layers[l]) / 1e9})
	}
	return tw
}

// printInfo writes the text form.
func printInfo(w io.Writer, out *infoOutput, cfg *clip.Config) error {
	fmt.Fprintf(w, "%s: %d parameters (%.2fM), %.3f GFLOPs per image + text\n", out.Model, out.Params, float64(out.Params)/1e6, out.GFLOPs)
	dtype := out.DType
	if dtype == "" {
		dtype = "not declared"
	}
	fmt.Fprintf(w, "layout %s, declared dtype %s (computed in float32), projection_dim %d, logit_scale_init_value %g\n",
		out.Layout, dtype, cfg.ProjectionDim, cfg.LogitScaleInitValue)
	if len(out.Defaulted) > 0 {
		fmt.Fprintf(w, "keys config.json leaves out (transformers' defaults used): %s\n", strings.Join(out.Defaulted, ", "))
	}
	pool := fmt.Sprintf("first eos_token_id %d", cfg.Text.EOSTokenID)
	if cfg.Text.EOSTokenID == 2 {
		pool = "argmax of the ids (legacy eos_token_id 2)"
	}
	for _, tw := range []struct {
		name string
		t    *clip.TowerConfig
		d    infoTower
		seq  string
	}{
		{"vision", &cfg.Vision, out.Vision, fmt.Sprintf("%d tokens, image %d, patch %d", out.Vision.Tokens, cfg.Vision.ImageSize, cfg.Vision.PatchSize)},
		{"text", &cfg.Text, out.Text, fmt.Sprintf("%d tokens, vocabulary %d, pooling at the %s", out.Text.Tokens, cfg.Text.VocabSize, pool)},
	} {
		t, d := tw.t, tw.d
		fmt.Fprintf(w, "\n%s: %d layers, width %d, head dim %d, %s, %s, layer_norm_eps %g: %d parameters (%.2fM, projection included), %.3f GFLOPs\n",
			tw.name, t.NumHiddenLayers, t.HiddenSize, t.HeadDim(), t.HiddenAct, tw.seq, t.LayerNormEps, d.Params, float64(d.Params)/1e6, d.GFLOPs)
		fmt.Fprintf(w, "  %-5s %-7s %5s %6s %12s %9s\n", "layer", "teacher", "heads", "mlp", "params", "GFLOPs")
		for _, l := range d.PerLayer {
			fmt.Fprintf(w, "  %-5d %-7d %5d %6d %12d %9.4f\n", l.Layer, l.TeacherLayer, l.Heads, l.MLP, l.Params, l.GFLOPs)
		}
	}
	return nil
}
