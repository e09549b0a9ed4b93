package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/tensor"
)

func init() {
	register(&command{
		name:    "embed",
		summary: "print the projected (unnormalised) CLIP embeddings of images and texts as JSON",
		usage:   "--model DIR [--image FILE]... [--text STR]... [--pixels FILE.npy]",
		run:     runEmbed,
	})
}

// embedOutput is what embed prints. Go's JSON encoder writes each float32
// with the fewest digits that read back to the same float32.
type embedOutput struct {
	ImageEmbeds [][]float32 `json:"image_embeds"`
	TextEmbeds  [][]float32 `json:"text_embeds"`
}

func rowsOf(t *tensor.Tensor) ([][]float32, error) {
	out := make([][]float32, 0)
	if t == nil || len(t.Shape) != 2 {
		return out, nil
	}
	n, e := t.Shape[0], t.Shape[1]
	for i := 0; i < n; i++ {
		row := t.Data[i*e : (i+1)*e]
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("embedding %d has a non-finite value (%v at %d): the model weights are broken", i, v, j)
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func runEmbed(args []string, stdout, stderr io.Writer) error {
	c := commands["embed"]
	fl := newFlags(c, stderr)
	model := modelFlag(fl, "model `DIR` (Hugging Face layout: config.json, model.safetensors, vocab.json, merges.txt; or open_clip's)")
	vocab := vocabFlag(fl, "tokenizer `PATH` for --text when the model dir has none (e.g. open_clip): a dir with vocab.json+merges.txt or OpenAI's bpe .txt.gz")
	var images, texts stringList
	fl.Var(&images, "image", "PNG or JPEG `FILE` to embed (repeatable), preprocessed as 'mope preprocess --model DIR' does")
	fl.Var(&texts, "text", "`STR` to embed (repeatable); texts longer than the context are truncated")
	pixels := fl.String("pixels", "", "already preprocessed float32 [N,3,S,S] array `FILE.npy` to embed (instead of --image)")
	modeName := fl.String("mode", "resize-crop", "image preprocessing for --image: resize-crop (CLIP) or squash")
	batch := fl.Int("batch", clip.DefaultBatch, "forward batch size")
	device := deviceFlag(fl)
	engine := engineFlag(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q (images go after --image, texts after --text)", errUsage, fl.Arg(0))
	case *model == "":
		return fmt.Errorf("%w: need --model DIR", errUsage)
	case len(images) == 0 && len(texts) == 0 && *pixels == "":
		return fmt.Errorf("%w: nothing to embed: give --image FILE, --text STR or --pixels FILE.npy", errUsage)
	case len(images) > 0 && *pixels != "":
		return fmt.Errorf("%w: give --image or --pixels, not both", errUsage)
	case *batch < 1:
		return fmt.Errorf("%w: --batch must be at least 1", errUsage)
	}
	mode, err := imageproc.ParseMode(*modeName)
	if err != nil {
		return fmt.Errorf("%w: --mode %q: want resize-crop or squash", errUsage, *modeName)
	}

	m, err := openModel(*model, stderr)
	if err != nil {
		return err
	}
	enc := &clip.Encoder{Model: m, Batch: *batch, Progress: stderr}
	release, err := encoderDevice(*device, *engine, enc, len(images) > 0 || *pixels != "", len(texts) > 0, false, stderr)
	if err != nil {
		return err
	}
	defer release()
	out := embedOutput{ImageEmbeds: [][]float32{}, TextEmbeds: [][]float32{}}
	var img *tensor.Tensor
	switch {
	case *pixels != "":
		data, shape, err := imageproc.ReadNPY(*pixels)
		if err != nil {
			return err
		}
		S := m.Config.Vision.ImageSize
		if len(shape) != 4 || shape[1] != 3 || shape[2] != S || shape[3] != S {
			return fmt.Errorf("%s: shape %v, but the model takes [N,3,%d,%d] (see 'mope preprocess --model %s')", *pixels, shape, S, S, *model)
		}
		if img, err = encodeImages(enc, data, shape[0]); err != nil {
			return err
		}
	case len(images) > 0:
		pre, err := modelPreprocessConfig(*model)
		if err != nil {
			return err
		}
		pre.Mode = mode
		if img, err = enc.ImageFiles(images, pre); err != nil {
			return err
		}
	}
	if out.ImageEmbeds, err = rowsOf(img); err != nil {
		return err
	}
	if len(texts) > 0 {
		tok, err := modelTokenizer(*model, *vocab)
		if err != nil {
			return err
		}
		enc.Tok = tok
		txt, err := enc.Texts(texts)
		if err != nil {
			return err
		}
		if out.TextEmbeds, err = rowsOf(txt); err != nil {
			return err
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
