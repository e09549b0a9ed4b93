package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mopeclip/mopeclip/clip"
)

// loadModel loads the model directory of --model with errors that say
// what is missing; every command loads models through loadModelAs.
func loadModel(dir string) (*clip.Model, error) { return loadModelAs("--model", dir) }

// loadModelAs loads the model directory dir given by flag (e.g. --teacher).
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
		return nil, fmt.Errorf("%s %s is not a directory (want a Hugging Face CLIP model directory with config.json and model.safetensors)", flag, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, clip.ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %s has no %s (not a Hugging Face CLIP model directory; 'mope init' writes one)", flag, dir, clip.ConfigFile)
	}
	m, err := clip.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return m, nil
}
