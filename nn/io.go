package nn

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/internal/safetensors"
	"github.com/mopeclip/mopeclip/tensor"
)

// toFile returns a safetensors file holding params as F32 tensors under their
// names, in order, with the given metadata (copied). The tensors share memory
// with the parameters.
func toFile(params []*Param, metadata map[string]string) (*safetensors.File, error) {
	if err := checkUnique(params); err != nil {
		return nil, err
	}
	f := &safetensors.File{Tensors: make(map[string]*safetensors.Tensor, len(params)), Metadata: maps.Clone(metadata)}
	for _, p := range params {
		f.Names = append(f.Names, p.Name)
		f.Tensors[p.Name] = &safetensors.Tensor{DType: safetensors.F32, Shape: slices.Clone(p.Value.Shape), F32: p.Value.Data}
	}
	return f, nil
}

// SaveParams writes params to path as a safetensors file (atomically: a
// crash leaves the old file or the new one, never half of one).
func SaveParams(path string, params []*Param, metadata map[string]string) error {
	f, err := toFile(params, metadata)
	if err != nil {
		return fmt.Errorf("nn: save %s: %w", path, err)
	}
	if err := safetensors.Save(path, f); err != nil {
		return fmt.Errorf("nn: save %s: %w", path, err)
	}
	return nil
}

// loadOptions relaxes loadFromFile and checkLoad (tests use it). The zero
// value is strict, as LoadParams and LoadCheckpoint are.
type loadOptions struct {
	// AllowMissing leaves parameters that the file lacks unchanged.
	AllowMissing bool
	// AllowUnexpected ignores file tensors that match no parameter.
	AllowUnexpected bool
}

// LoadParams reads the safetensors file at path into params. Every parameter
// must be present with its exact shape and no other tensor may be in the
// file; otherwise the error names every missing, unexpected and mis-shaped
// tensor and no parameter is changed. F16 and BF16 tensors are widened.
func LoadParams(path string, params []*Param) error {
	f, err := safetensors.Load(path)
	if err != nil {
		return fmt.Errorf("nn: load %s: %w", path, err)
	}
	if err := loadFromFile(f, params, loadOptions{}); err != nil {
		return fmt.Errorf("nn: load %s: %w", path, err)
	}
	return nil
}

// loadFromFile copies the tensors of f into the parameters of the same name.
// It checks everything first and changes nothing on error; the error lists
// all the problems found.
func loadFromFile(f *safetensors.File, params []*Param, o loadOptions) error {
	if err := checkLoad(f, params, o); err != nil {
		return err
	}
	applyLoad(f, params)
	return nil
}

// checkLoad reports every way in which f does not fit params under o.
func checkLoad(f *safetensors.File, params []*Param, o loadOptions) error {
	if err := checkUnique(params); err != nil {
		return err
	}
	var missing, unexpected, misShaped, badType []string
	want := make(map[string]bool, len(params))
	for _, p := range params {
		want[p.Name] = true
		t, ok := f.Tensors[p.Name]
		switch {
		case !ok:
			if !o.AllowMissing {
				missing = append(missing, p.Name)
			}
		case t.DType == safetensors.I64 || (t.F32 == nil && numel(t.Shape) > 0):
			badType = append(badType, fmt.Sprintf("%s (%s)", p.Name, t.DType))
		case !slices.Equal(t.Shape, p.Value.Shape) || len(t.F32) != p.Value.Len():
			misShaped = append(misShaped, fmt.Sprintf("%s (file %v, model %v)", p.Name, t.Shape, p.Value.Shape))
		}
	}
	if !o.AllowUnexpected {
		for _, n := range fileNames(f) {
			if !want[n] {
				unexpected = append(unexpected, n)
			}
		}
	}
	var errs []string
	for _, e := range []struct {
		what  string
		names []string
	}{{"missing", missing}, {"unexpected", unexpected}, {"mis-shaped", misShaped}, {"non-float", badType}} {
		if len(e.names) > 0 {
			errs = append(errs, fmt.Sprintf("%d %s tensors: %s", len(e.names), e.what, strings.Join(e.names, ", ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("parameters do not match: %s", strings.Join(errs, "; "))
	}
	return nil
}

// applyLoad copies the tensors of f into params; checkLoad has passed.
func applyLoad(f *safetensors.File, params []*Param) {
	for _, p := range params {
		if t, ok := f.Tensors[p.Name]; ok {
			copy(p.Value.Data, t.F32)
		}
	}
}

// fileNames returns the tensor names of f in file order (Names when set,
// else sorted map keys).
func fileNames(f *safetensors.File) []string {
	if len(f.Names) == len(f.Tensors) {
		return f.Names
	}
	return slices.Sorted(maps.Keys(f.Tensors))
}

func tensorView(data []float32, shape []int) *tensor.Tensor {
	return &tensor.Tensor{Shape: slices.Clone(shape), Data: data}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Checkpoint layout. A training checkpoint is one safetensors file holding
// the parameters under their own names, the AdamW moments of each optimised
// parameter under ckptExpAvg+name and ckptExpAvgSq+name, and metadata:
// format/version, the training step, the optimiser step count and
// hyper-parameters, and the caller's extra entries under ckptExtra+key.
const (
	ckptFormat   = "mopeclip.checkpoint"
	ckptVersion  = "1"
	ckptExpAvg   = "optimizer.exp_avg."
	ckptExpAvgSq = "optimizer.exp_avg_sq."
	ckptExtra    = "extra."
)

// SaveCheckpoint writes a training checkpoint: params, the moments and step
// count of opt (nil for none), the training step and extra (for instance the
// caller's RNG state or data position). The file is written atomically.
func SaveCheckpoint(path string, params []*Param, opt *AdamW, step int, extra map[string]string) error {
	md := map[string]string{
		"format":  ckptFormat,
		"version": ckptVersion,
		"step":    strconv.Itoa(step),
	}
	for k, v := range extra {
		md[ckptExtra+k] = v
	}
	f, err := toFile(params, nil)
	if err != nil {
		return fmt.Errorf("nn: save checkpoint %s: %w", path, err)
	}
	f.Metadata = md
	if opt != nil {
		md["optimizer"] = "adamw"
		md["adamw.t"] = strconv.Itoa(opt.t)
		md["adamw.beta1"] = fmtFloat(opt.Beta1)
		md["adamw.beta2"] = fmtFloat(opt.Beta2)
		md["adamw.eps"] = fmtFloat(opt.Eps)
		md["adamw.weight_decay"] = fmtFloat(opt.WeightDecay)
		for i, p := range opt.params {
			for _, s := range []struct {
				prefix string
				data   []float32
			}{{ckptExpAvg, opt.m[i]}, {ckptExpAvgSq, opt.v[i]}} {
				name := s.prefix + p.Name
				if _, dup := f.Tensors[name]; dup {
					return fmt.Errorf("nn: save checkpoint %s: parameter name %q clashes with optimiser state", path, name)
				}
				f.Names = append(f.Names, name)
				f.Tensors[name] = &safetensors.Tensor{DType: safetensors.F32, Shape: slices.Clone(p.Value.Shape), F32: s.data}
			}
		}
	}
	if err := safetensors.Save(path, f); err != nil {
		return fmt.Errorf("nn: save checkpoint %s: %w", path, err)
	}
	return nil
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint into params
// and opt (nil to skip the optimiser state) and returns the training step and
// the extra entries. params must match the checkpoint's parameters exactly.
// opt keeps its own hyper-parameters; its moments and step count are
// restored. On error nothing is changed.
func LoadCheckpoint(path string, params []*Param, opt *AdamW) (step int, extra map[string]string, err error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return 0, nil, fmt.Errorf("nn: load checkpoint %s: %w", path, err)
	}
	step, extra, err = loadCheckpointFile(f, params, opt)
	if err != nil {
		return 0, nil, fmt.Errorf("nn: load checkpoint %s: %w", path, err)
	}
	return step, extra, nil
}

func loadCheckpointFile(f *safetensors.File, params []*Param, opt *AdamW) (int, map[string]string, error) {
	md := f.Metadata
	if md["format"] != ckptFormat {
		return 0, nil, fmt.Errorf("not a mopeclip training checkpoint (format %q)", md["format"])
	}
	if md["version"] != ckptVersion {
		return 0, nil, fmt.Errorf("unsupported checkpoint version %q", md["version"])
	}
	step, err := strconv.Atoi(md["step"])
	if err != nil {
		return 0, nil, fmt.Errorf("bad step %q", md["step"])
	}
	// Split the file into parameters and optimiser state.
	pf := &safetensors.File{Tensors: map[string]*safetensors.Tensor{}}
	sf := &safetensors.File{Tensors: map[string]*safetensors.Tensor{}}
	for _, n := range fileNames(f) {
		if strings.HasPrefix(n, ckptExpAvg) || strings.HasPrefix(n, ckptExpAvgSq) {
			sf.Names = append(sf.Names, n)
			sf.Tensors[n] = f.Tensors[n]
		} else {
			pf.Names = append(pf.Names, n)
			pf.Tensors[n] = f.Tensors[n]
		}
	}
	var optT int
	var state []*Param
	if opt != nil {
		if md["optimizer"] != "adamw" {
			return 0, nil, fmt.Errorf("checkpoint has no AdamW state (optimizer %q)", md["optimizer"])
		}
		if optT, err = strconv.Atoi(md["adamw.t"]); err != nil || optT < 0 {
			return 0, nil, fmt.Errorf("bad adamw.t %q", md["adamw.t"])
		}
		// Wrap the moment buffers as parameters so loadFromFile checks
		// and copies them with the same rules.
		for i, p := range opt.params {
			state = append(state,
				&Param{Name: ckptExpAvg + p.Name, Value: tensorView(opt.m[i], p.Value.Shape)},
				&Param{Name: ckptExpAvgSq + p.Name, Value: tensorView(opt.v[i], p.Value.Shape)})
		}
	}
	// Check both halves before changing either.
	if err := checkLoad(pf, params, loadOptions{}); err != nil {
		return 0, nil, err
	}
	if opt != nil {
		if err := checkLoad(sf, state, loadOptions{}); err != nil {
			return 0, nil, fmt.Errorf("optimiser state: %w", err)
		}
		applyLoad(sf, state)
		opt.t = optT
	}
	applyLoad(pf, params)
	extra := map[string]string{}
	for k, v := range md {
		if strings.HasPrefix(k, ckptExtra) {
			extra[strings.TrimPrefix(k, ckptExtra)] = v
		}
	}
	return step, extra, nil
}
