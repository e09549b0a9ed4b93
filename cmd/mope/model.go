package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/mopeclip/mopeclip/clip"
)

// loadModel loads the model directory of --model with errors that say
// what is missing. Every command loads models through loadModelAs (most
// through openModel / openModelAs, which also print the config's notes).
func loadModel(dir string) (*clip.Model, error) { return loadModelAs("--model", dir) }

// openModelAs is openModel for the directory given by flag (e.g. --teacher).
func openModelAs(flag, dir string, stderr io.Writer) (*clip.Model, error) {
	m, err := loadModelAs(flag, dir)
	if err != nil {
		return nil, err
	}
	warnNotes(stderr, m.Notes)
	return m, nil
}

// loadModelAs loads the model directory dir given by flag.
func loadModelAs(flag, dir string) (*clip.Model, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: need %s DIR", errUsage, flag)
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: model directory %s does not exist", flag, dir)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", flag, err)
	case !st.IsDir():
		return nil, fmt.Errorf("%s %s is not a directory (want a Hugging Face CLIP model directory with config.json and model.safetensors, or an open_clip one)", flag, dir)
	}
	if _, err := clip.DetectLayout(dir); err != nil {
		return nil, fmt.Errorf("%s: %s has no %s (not a Hugging Face CLIP model directory; 'mope init' writes one) and no %s (open_clip)", flag, dir, clip.ConfigFile, clip.OpenCLIPConfigFile)
	}
	m, err := clip.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return m, nil
}
