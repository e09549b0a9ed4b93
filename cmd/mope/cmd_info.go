package main

import (
	"fmt"
	"io"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/mope"
)

func init() {
	register(&command{
		name:    "info",
		summary: "print a model's parameters and GFLOPs per tower and per layer, with heads and MLP widths",
		usage:   "--model DIR\n\n  GFLOPs = 2·MACs: vision per image, text per text at the context length (77).",
		run:     runInfo,
	})
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	c := commands["info"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if *model == "" || fl.NArg() > 0 {
		return fmt.Errorf("%w: --model DIR is required (and nothing else)", errUsage)
	}
	m, err := clip.Load(*model)
	if err != nil {
		return err
	}
	cfg := m.Config
	pv, pt, total := m.NumParams()
	vm, tm := cfg.VisionMACs(), cfg.TextMACs(0)
	fmt.Fprintf(stdout, "%s: %d parameters (%.2fM), %.3f GFLOPs per image + text\n", *model, total, float64(total)/1e6, vm.GFLOPs()+tm.GFLOPs())
	for _, tw := range []struct {
		name   string
		t      *clip.TowerConfig
		params int
		macs   clip.MACs
		seq    string
	}{
		{"vision", &cfg.Vision, pv, vm, fmt.Sprintf("%d tokens, image %d, patch %d", cfg.Vision.NumPatches()+1, cfg.Vision.ImageSize, cfg.Vision.PatchSize)},
		{"text", &cfg.Text, pt, tm, fmt.Sprintf("%d tokens", cfg.Text.MaxPositionEmbeddings)},
	} {
		t := tw.t
		fmt.Fprintf(stdout, "\n%s: %d layers, width %d, head dim %d, %s: %d parameters (%.2fM, projection included), %.3f GFLOPs\n",
			tw.name, t.NumHiddenLayers, t.HiddenSize, t.HeadDim(), tw.seq, tw.params, float64(tw.params)/1e6, tw.macs.GFLOPs())
		fmt.Fprintf(stdout, "  %-5s %-7s %5s %6s %12s %9s\n", "layer", "teacher", "heads", "mlp", "params", "GFLOPs")
		for l := 0; l < t.NumHiddenLayers; l++ {
			fmt.Fprintf(stdout, "  %-5d %-7d %5d %6d %12d %9.4f\n", l, t.TeacherLayer(l), t.Heads(l), t.Intermediate(l),
				mope.LayerParams(t, l), 2*float64(tw.macs.Layers[l])/1e9)
		}
	}
	return nil
}
