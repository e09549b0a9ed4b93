package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mopeclip/mopeclip/export"
	"github.com/mopeclip/mopeclip/mope"
)

func init() {
	register(&command{
		name:    "export",
		summary: "export a (pruned) model as a Hugging Face directory stock transformers loads, or as ONNX encoders",
		usage: "--model DIR --format hf|onnx --out OUT [--force] [--vocab PATH] [--json]\n\n" +
			"  hf:   OUT is a CLIPModel directory with one head count and one MLP width per tower; a pruned\n" +
			"        layer's missing heads and neurons are zeros (same outputs, dense FLOPs: compatibility, not speed).\n" +
			"  onnx: OUT/image_encoder.onnx (pixel_values [batch,3,S,S] → image_embeds [batch,E]) and\n" +
			"        OUT/text_encoder.onnx (input_ids int64 [batch,T≤context] → text_embeds [batch,E]), the\n" +
			"        embeddings 'mope embed' prints, with the pruned layers' real shapes (opset 17); OUT/export.json\n" +
			"        describes the inputs. The tokenizer and preprocessor files are copied along in both formats\n" +
			"        (the tokenizer from --vocab when the model dir has none).\n" +
			"  The export is written to a temporary directory and renamed to OUT when complete.",
		run: runExport,
	})
}

func runExport(args []string, stdout, stderr io.Writer) error {
	c := commands["export"]
	fl := newFlags(c, stderr)
	model := fl.String("model", "", "model `DIR` to export (Hugging Face layout, pruned or not)")
	formatName := fl.String("format", "", "export `FORMAT`: hf or onnx")
	out := fl.String("out", "", "output `DIR` (must not exist, or be empty, unless --force)")
	force := fl.Bool("force", false, "replace an existing --out once the new export is complete")
	vocab := vocabFlag(fl, "tokenizer `PATH` written along when the model dir has none (e.g. open_clip): a dir with vocab.json+merges.txt or OpenAI's bpe .txt.gz")
	asJSON := fl.Bool("json", false, "print a JSON summary (format, files, bytes, per-layer widths) instead of text")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case *formatName == "":
		return fmt.Errorf("%w: need --format hf or --format onnx", errUsage)
	case *out == "":
		return fmt.Errorf("%w: need --out DIR", errUsage)
	}
	format, err := export.ParseFormat(*formatName)
	if err != nil {
		return fmt.Errorf("%w: --format: %v", errUsage, err)
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	opts := export.Options{Source: *model, Replace: *force}
	if !export.HasTokenizer(*model) && *vocab != "" {
		if opts.Tokenizer, err = mope.LoadTokenizer(*model, *vocab); err != nil {
			return fmt.Errorf("--vocab: %w", err)
		}
	}
	// Two exports to one --out: the second fails at once instead of
	// silently replacing the first's (each checked that --out was free).
	unlock, err := lockOut(*out)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := export.Write(ctx, m, *out, format, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s export of %s to %s: %s (%.1f MB, %d parameters)\n",
		s.Format, *model, s.Out, strings.Join(s.Files, ", "), float64(s.Bytes)/1e6, s.Params)
	for _, tw := range []struct {
		name string
		t    export.TowerSummary
	}{{"vision", s.Vision}, {"text", s.Text}} {
		fmt.Fprintf(stdout, "  %-6s %d layers, heads %v, MLP widths %v\n", tw.name, tw.t.Layers, tw.t.Heads, tw.t.Intermediate)
	}
	return nil
}
