// Package ortnode runs ONNX exports in ONNX Runtime through Node.js and the
// onnxruntime-node package (installed by scripts/test-deps.sh), for tests
// and benchmarks; ort.js is the script it runs.
package ortnode

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed ort.js
var script []byte

// Script returns ort.js, the Node.js runner.
func Script() []byte { return script }

// RequireEnv is the variable that makes a missing ONNX Runtime an error in
// tests instead of a skip (CI sets it).
const RequireEnv = "MOPECLIP_REQUIRE_ORT"

// NodePath returns the node_modules directory that holds onnxruntime-node:
// $MOPECLIP_ORT_NODE_PATH, else where scripts/test-deps.sh installs it,
// $XDG_CACHE_HOME/mopeclip/ort/node_modules (~/.cache by default).
func NodePath() string {
	if p := os.Getenv("MOPECLIP_ORT_NODE_PATH"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "mopeclip", "ort", "node_modules")
}

// Available reports why ONNX Runtime cannot be used here, or nil.
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node not found on PATH (install nodejs and run scripts/test-deps.sh)")
	}
	cmd := exec.CommandContext(ctx, "node", "-e", "require('onnxruntime-node')")
	cmd.Env = append(os.Environ(), "NODE_PATH="+NodePath())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("onnxruntime-node not loadable from %s (run scripts/test-deps.sh or set MOPECLIP_ORT_NODE_PATH): %v\n%s", NodePath(), err, firstLine(out))
	}
	return nil
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// Inputs are the tensors fed to the encoders; an empty part is not run.
type Inputs struct {
	Pixels      []float32 `json:"pixels,omitempty"`
	PixelsShape []int     `json:"pixels_shape,omitempty"`
	IDs         []int64   `json:"ids,omitempty"`
	IDsShape    []int     `json:"ids_shape,omitempty"`
}

// Outputs are the encoders' outputs, flat and row-major.
type Outputs struct {
	ImageEmbeds []float32 `json:"image_embeds"`
	ImageShape  []int     `json:"image_shape"`
	TextEmbeds  []float32 `json:"text_embeds"`
	TextShape   []int     `json:"text_shape"`
}

// Run runs the image and/or text encoder of the export in dir on in.
func Run(ctx context.Context, dir string, in *Inputs) (*Outputs, error) {
	work, err := os.MkdirTemp("", "mopeclip-ort-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	data, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	inPath, outPath, js := filepath.Join(work, "in.json"), filepath.Join(work, "out.json"), filepath.Join(work, "ort.js")
	if err := os.WriteFile(inPath, data, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(js, script, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", js, "run", dir, inPath, outPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+NodePath())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("onnx runtime on %s: %v\n%s", dir, err, out)
	}
	data, err = os.ReadFile(outPath)
	if err != nil {
		return nil, err
	}
	var o Outputs
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("onnx runtime output: %w", err)
	}
	return &o, nil
}
