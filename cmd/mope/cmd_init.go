package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

func init() {
	register(&command{
		name:    "init",
		summary: "write a random-weight CLIP checkpoint of a preset (for tests and benchmarks)",
		usage: "--preset NAME --out DIR [--seed S] [--vocab FILE]\n\n" +
			"  presets: " + strings.Join(clip.PresetNames(), ", ") + "\n" +
			"  --vocab (default $MOPECLIP_VOCAB) converts OpenAI's bpe_simple_vocab_16e6.txt.gz into\n" +
			"  DIR/vocab.json and DIR/merges.txt, so that the directory also tokenizes.",
		run: runInit,
	})
}

func runInit(args []string, stdout, stderr io.Writer) error {
	c := commands["init"]
	fl := newFlags(c, stderr)
	preset := fl.String("preset", "", "architecture `NAME`: "+strings.Join(clip.PresetNames(), ", "))
	out := outFlag(fl, "", "output model `DIR` (created)")
	seed := seedFlag(fl, 0, "random seed of the weights")
	vocab := vocabFlag(fl, "OpenAI merges `FILE` (bpe_simple_vocab_16e6.txt.gz) to write vocab.json and merges.txt from")
	force := fl.Bool("force", false, "overwrite an existing checkpoint in DIR")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	switch {
	case fl.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fl.Arg(0))
	case *preset == "":
		return fmt.Errorf("%w: need --preset NAME (%s)", errUsage, strings.Join(clip.PresetNames(), ", "))
	case *out == "":
		return fmt.Errorf("%w: need --out DIR", errUsage)
	}
	cfg, err := clip.Preset(*preset)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if !*force {
		for _, name := range []string{clip.ConfigFile, clip.WeightsFile, clip.WeightsIndex} {
			if _, err := os.Stat(filepath.Join(*out, name)); err == nil {
				return fmt.Errorf("%s already holds a checkpoint (%s); use --force to overwrite it", *out, name)
			}
		}
	}
	// Read the vocabulary first: a bad --vocab should not leave a half-written DIR.
	var tok *tokenizer.Tokenizer
	if *vocab != "" {
		if tok, err = tokenizer.LoadOpenAI(*vocab); err != nil {
			return err
		}
		if tok.VocabSize() > cfg.Text.VocabSize {
			return fmt.Errorf("%s has %d tokens but preset %s's vocab_size is %d", *vocab, tok.VocabSize(), *preset, cfg.Text.VocabSize)
		}
		// The text is pooled at the first eos_token_id: it must be the
		// tokenizer's end-of-text, or every caption would be pooled at
		// its last (padding) position. A smaller vocabulary has its own.
		cfg.Text.EOSTokenID, cfg.Text.BOSTokenID = tok.EOT(), tok.SOT()
	}
	m, err := clip.New(cfg, *seed)
	if err != nil {
		return err
	}
	if err := m.SaveWith(*out, clip.SaveOptions{Tokenizer: tok}); err != nil {
		return err
	}
	what := "no tokenizer (give --vocab or set MOPECLIP_VOCAB to add vocab.json and merges.txt)"
	if tok != nil {
		what = fmt.Sprintf("tokenizer from %s", *vocab)
	}
	vis, txt, total := m.NumParams()
	fmt.Fprintf(stdout, "wrote %s: random %s (seed %d), %.2fM parameters (vision %.2fM, text %.2fM), %s\n",
		*out, *preset, *seed, float64(total)/1e6, float64(vis)/1e6, float64(txt)/1e6, what)
	return nil
}
