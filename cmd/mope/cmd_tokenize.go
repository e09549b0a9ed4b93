package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
)

func init() {
	register(&command{
		name:    "tokenize",
		summary: "print the CLIP token ids of each TEXT as a JSON array, one line each",
		usage:   "(--model DIR | --vocab FILE) [--context N] [--truncate] TEXT...",
		run:     runTokenize,
	})
}

// runTokenize accepts flags before and after the texts; everything after
// "--" is text, which is how to pass a text that starts with "-".
func runTokenize(args []string, stdout, stderr io.Writer) error {
	c := commands["tokenize"]
	fs := newFlags(c, stderr)
	model := modelFlag(fs, "model `DIR`: its vocab.json + merges.txt (or tokenizer.json) and its text context")
	vocab := vocabFlag(fs, "CLIP merges `FILE` (bpe_simple_vocab_16e6.txt.gz, gzip or plain)")
	context := fs.Int("context", 0, "context length: longer texts are an error unless --truncate (default: the --model's text context, else 77)")
	truncate := fs.Bool("truncate", false, "cut texts longer than --context, keeping <|endoftext|> last")

	var texts []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			texts = append(texts, rest...) // after "--" nothing is a flag
			break
		}
		texts = append(texts, rest[0])
		args = rest[1:]
	}

	if *model != "" && !flagSet(fs, "vocab") {
		*vocab = "" // --model wins over $MOPECLIP_VOCAB
	}
	if (*model == "") == (*vocab == "") {
		return fmt.Errorf("%w: give exactly one of --model DIR and --vocab FILE", errUsage)
	}
	if flagSet(fs, "context") && *context < 2 {
		return fmt.Errorf("%w: --context must be at least 2, got %d", errUsage, *context)
	}
	if len(texts) == 0 {
		return fmt.Errorf("%w: no TEXT to tokenize", errUsage)
	}
	var (
		tok *tokenizer.Tokenizer
		err error
	)
	if *model != "" {
		tok, err = clip.LoadTokenizer(*model)
	} else {
		tok, err = tokenizer.LoadOpenAI(*vocab)
	}
	if err != nil {
		return err
	}
	if !flagSet(fs, "context") {
		if *context, err = modelContext(*model); err != nil {
			return err
		}
	}
	for _, text := range texts {
		ids, err := tok.Tokenize(text, *context, *truncate)
		if err != nil {
			return err
		}
		line, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			return err
		}
	}
	return nil
}

// modelContext is the text context of model directory dir
// (text_config.max_position_embeddings, or open_clip's context_length),
// or the CLIP default when dir is "" or has no config (a tokenizer-only
// directory).
func modelContext(dir string) (int, error) {
	if dir == "" {
		return tokenizer.DefaultContext, nil
	}
	if _, err := clip.DetectLayout(dir); err != nil {
		return tokenizer.DefaultContext, nil
	}
	cfg, _, err := clip.LoadModelConfig(dir)
	if err != nil {
		return 0, err
	}
	return cfg.Text.MaxPositionEmbeddings, nil
}
