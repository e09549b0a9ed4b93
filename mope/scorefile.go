package mope

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
)

// ScoreFormat identifies score files.
const ScoreFormat = "mopeclip-scores/1"

// Settings are everything that determines a score run's numbers; shards
// merge only when their Settings are equal.
type Settings struct {
	Metric    Metric        `json:"metric"`
	Towers    clip.TowerSet `json:"towers"`
	Kinds     []string      `json:"kinds"`
	Groups    int           `json:"groups"`
	GroupRule string        `json:"group_rule"`
	Data      string        `json:"data,omitempty"`
	Split     string        `json:"split,omitempty"`
	Limit     int           `json:"limit,omitempty"`
	Images    int           `json:"images"`
	Captions  int           `json:"captions"`
	Batch     int           `json:"batch"`
	Seed      uint64        `json:"seed"`
	// Engine is the scoring engine of the mope and unimodal metrics
	// (EngineFast or EngineRef; absent for the other metrics).
	Engine Engine `json:"engine,omitempty"`
	// DType is the fast engine's weight type when not float32 ("bf16",
	// "int8": Options.DType).
	DType string `json:"dtype,omitempty"`
	// Rescore is the plan a two-stage reduced-precision run made exact
	// (Options.Rescore: "width=0.5,depth=0.5"); absent for one stage.
	Rescore string `json:"rescore,omitempty"`
	// Model is a SHA-256 fingerprint of the config and every parameter.
	Model string `json:"model"`
}

// ModuleScore is the score of one module; ID is its position in Modules'
// canonical enumeration for the run's settings.
type ModuleScore struct {
	ID int `json:"id"`
	Module
	Score float64 `json:"score"`
	// Reduced, in a two-stage run, is the reduced-precision score of a
	// module that was rescored in float32 (Score).
	Reduced *float64 `json:"reduced,omitempty"`
}

// ScoreFile is what `mope score` writes: complete, a shard, or a checkpoint
// of a run in progress (Complete false).
type ScoreFile struct {
	Format   string   `json:"format"`
	Settings Settings `json:"settings"`
	// Shard is "I/N" for one shard of a run, "" for a whole (or merged) run.
	Shard string `json:"shard,omitempty"`
	// Total is the number of modules of the whole run.
	Total int `json:"total"`
	// Baseline holds Z of the unpruned model per scored tower's evaluation
	// (mope), or 1 (unimodal: cosine of the features with themselves).
	Baseline float64       `json:"baseline"`
	Complete bool          `json:"complete"`
	Scores   []ModuleScore `json:"scores"`
	// Rescored says what the float32 stage of a two-stage run did.
	Rescored *RescoreReport `json:"rescored,omitempty"`
}

// Lookup returns the scores by module.
func (f *ScoreFile) Lookup() map[Module]float64 {
	out := make(map[Module]float64, len(f.Scores))
	for _, s := range f.Scores {
		out[s.Module] = s.Score
	}
	return out
}

// Has reports whether the file scores modules of this tower and kind.
func (f *ScoreFile) Has(tower clip.Tower, kind string) bool {
	for _, s := range f.Scores {
		if s.Tower == tower && s.Kind == kind {
			return true
		}
	}
	return false
}

// ReadScores reads a score file.
func ReadScores(path string) (*ScoreFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f ScoreFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Format != ScoreFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, f.Format, ScoreFormat)
	}
	return &f, nil
}

// WriteScores writes f atomically (scores sorted by ID). NaN and ±Inf
// scores are written as ±1e308 / 0 would be wrong; they are rejected.
func WriteScores(path string, f *ScoreFile) error {
	sort.Slice(f.Scores, func(i, j int) bool { return f.Scores[i].ID < f.Scores[j].ID })
	for _, s := range f.Scores {
		if math.IsNaN(s.Score) || math.IsInf(s.Score, 0) {
			return fmt.Errorf("mope: %v has a non-finite score %v", s.Module, s.Score)
		}
	}
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}

// ParseShard parses "I/N" with 0 <= I < N ("" is 0/1).
func ParseShard(s string) (i, n int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("bad shard %q: want I/N with 0 <= I < N", s)
	}
	return i, n, nil
}

// InShard reports whether module id belongs to shard i of n: modules are
// dealt round-robin, so every shard gets a share of every layer.
func InShard(id, i, n int) bool { return id%n == i }

// Fingerprint returns a SHA-256 over the config and all parameters of m
// (16 hex digits).
func Fingerprint(m *clip.Model) string {
	h := sha256.New()
	cfg, _ := m.Config.JSON()
	h.Write(cfg)
	var buf []byte
	for _, p := range m.Params() {
		h.Write([]byte(p.Name))
		buf = buf[:0]
		for _, v := range p.Value.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Merge combines shard files into the file a single run would have written:
// every shard must be complete, have equal settings, baseline and total, and
// together they must cover each module exactly once.
func Merge(files []*ScoreFile) (*ScoreFile, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("mope merge: no files")
	}
	first := files[0]
	out := &ScoreFile{Format: ScoreFormat, Settings: first.Settings, Total: first.Total, Baseline: first.Baseline, Complete: true}
	seen := map[int]bool{}
	for k, f := range files {
		if !reflect.DeepEqual(f.Settings, first.Settings) {
			a, _ := json.Marshal(first.Settings)
			b, _ := json.Marshal(f.Settings)
			return nil, fmt.Errorf("mope merge: file %d has different settings:\n  %s\n  %s", k+1, a, b)
		}
		if f.Total != first.Total || f.Baseline != first.Baseline {
			return nil, fmt.Errorf("mope merge: file %d has total %d baseline %v, file 1 %d %v", k+1, f.Total, f.Baseline, first.Total, first.Baseline)
		}
		if !f.Complete {
			return nil, fmt.Errorf("mope merge: file %d (shard %q) is incomplete; finish it with --resume", k+1, f.Shard)
		}
		for _, s := range f.Scores {
			if s.ID < 0 || s.ID >= f.Total {
				return nil, fmt.Errorf("mope merge: file %d: module id %d outside [0,%d)", k+1, s.ID, f.Total)
			}
			if seen[s.ID] {
				return nil, fmt.Errorf("mope merge: module %v (id %d) appears in more than one file", s.Module, s.ID)
			}
			seen[s.ID] = true
			out.Scores = append(out.Scores, s)
		}
	}
	if len(seen) != first.Total {
		var missing []string
		for id := 0; id < first.Total && len(missing) < 5; id++ {
			if !seen[id] {
				missing = append(missing, strconv.Itoa(id))
			}
		}
		return nil, fmt.Errorf("mope merge: %d of %d modules missing (ids %s...); a shard is absent", first.Total-len(seen), first.Total, strings.Join(missing, ","))
	}
	sort.Slice(out.Scores, func(i, j int) bool { return out.Scores[i].ID < out.Scores[j].ID })
	return out, nil
}
