package mope

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/internal/progress"
)

// Two-stage reduced-precision MoPE scoring.
//
// A MoPE score is a change of retrieval recall: a few flipped retrievals
// move it by tenths of a point, as much as the FFN groups of one layer
// differ from each other, so bf16 or int8 scores reorder such modules. With
// a Rescore spec, Score therefore runs in two stages:
//
//  0. the unpruned model's features and the baseline Z in float32 (one
//     forward of each tower; every score is relative to this baseline);
//  1. every module in the reduced type (Options.DType);
//  2. in float32, the modules whose order can still decide the plan that
//     the spec describes: in every decision of that plan (per layer: which
//     heads and FFN neurons a width ratio keeps, or per tower with Global;
//     per tower: which layers a depth ratio keeps), each pair of modules
//     on different sides of the keep/drop boundary must be ordered for
//     certain, i.e. both are exact or their intervals score ± margin do not
//     overlap. A module of an uncertain pair is rescored; this repeats
//     until no uncertain pair is left.
//
// The margin bounds |reduced − float32| of a module. It starts from
// DefaultMarginFlips retrieval flips of one image (100/(6·images) recall
// points each: the bf16 and int8 errors measured on the shapes teacher are
// at most 8 and 18 flips) and after each round grows to MarginSafety times
// the largest error seen among the rescored modules, so the bound is
// checked on every module that was rescored. Rescored scores are
// bit-identical to those of a float32 run (same kernels, same prefix
// cache, same baseline), and when no unrescored module errs by more than
// the margin, the plan made from the file is the float32 plan.

// MarginSafety is the factor between the largest error seen among the
// rescored modules and the margin of the next round.
const MarginSafety = 1.25

// DefaultMarginFlips is the starting margin per reduced type, in flips of
// one image's retrieval (one image's TR@k: 100/(6·images) recall points).
var DefaultMarginFlips = map[infer.DType]float64{infer.BF16: 10, infer.INT8: 20}

// Rescore describes the plan whose decisions a two-stage run makes exact:
// the width and depth ratios `mope prune` will be given (per layer, or per
// tower with Global). A ratio of 0 or 1 has no boundary.
type Rescore struct {
	Width, Depth float64
	Global       bool
	// Margin is the starting error margin in recall points (0: the type's
	// DefaultMarginFlips).
	Margin float64
}

// DefaultRescore is the plan of `mope prune --width 0.5 --depth 0.5`.
var DefaultRescore = Rescore{Width: 0.5, Depth: 0.5}

// ParseRescore parses "none" (nil: single stage), "plan" (DefaultRescore)
// or a comma list of width=R, depth=R, global and margin=P.
func ParseRescore(s string) (*Rescore, error) {
	switch strings.TrimSpace(s) {
	case "none", "off":
		return nil, nil
	case "plan", "":
		r := DefaultRescore
		return &r, nil
	}
	r := &Rescore{}
	ratio := func(k, v string) (float64, error) {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 || x > 1 || math.IsNaN(x) {
			return 0, fmt.Errorf("rescore %s=%q: want a ratio in [0,1]", k, v)
		}
		return x, nil
	}
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		var err error
		switch k {
		case "width":
			r.Width, err = ratio(k, v)
		case "depth":
			r.Depth, err = ratio(k, v)
		case "global":
			if v != "" {
				err = fmt.Errorf("rescore: global takes no value")
			}
			r.Global = true
		case "margin":
			r.Margin, err = strconv.ParseFloat(v, 64)
			if err != nil || r.Margin < 0 || math.IsNaN(r.Margin) || math.IsInf(r.Margin, 0) {
				err = fmt.Errorf("rescore margin=%q: want recall points >= 0", v)
			}
		default:
			err = fmt.Errorf("rescore: unknown item %q (want none, plan, or width=R,depth=R[,global][,margin=P])", f)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// String is the canonical form ParseRescore reads ("none" for nil).
func (r *Rescore) String() string {
	if r == nil {
		return "none"
	}
	s := "width=" + strconv.FormatFloat(r.Width, 'g', -1, 64) + ",depth=" + strconv.FormatFloat(r.Depth, 'g', -1, 64)
	if r.Global {
		s += ",global"
	}
	if r.Margin > 0 {
		s += ",margin=" + strconv.FormatFloat(r.Margin, 'g', -1, 64)
	}
	return s
}

// startMargin is the first round's margin in recall points.
func (r *Rescore) startMargin(dt infer.DType, images int) float64 {
	if r.Margin > 0 {
		return r.Margin
	}
	return DefaultMarginFlips[dt] * 100 / (6 * float64(max(images, 1)))
}

// RescoreReport says what the float32 stage of a two-stage run did.
type RescoreReport struct {
	Rescored int     `json:"rescored"`  // modules scored again in float32
	Rounds   int     `json:"rounds"`    // rescoring rounds
	Margin   float64 `json:"margin"`    // final margin, recall points
	MaxError float64 `json:"max_error"` // largest |reduced − float32| among the rescored
}

// decision is one keep/drop choice of a plan: the modules (indices into
// the scores) compete for keep units, each module holding units of them.
type decision struct {
	ids   []int
	units []int
	keep  int
}

// planDecisions returns the decisions of the plan r describes, over the
// scores of f (a complete run; kinds without scores make no decision).
func planDecisions(m *clip.Model, f *ScoreFile, r Rescore) ([]decision, error) {
	at := map[Module]int{}
	for i, s := range f.Scores {
		at[s.Module] = i
	}
	get := func(mod Module) (int, error) {
		i, ok := at[mod]
		if !ok {
			return 0, fmt.Errorf("mope: rescoring needs every module's score: no score for %v", mod)
		}
		return i, nil
	}
	var out []decision
	add := func(d decision, total int, ratio float64) {
		d.keep = roundCount(ratio, total)
		if len(d.ids) > 1 && d.keep > 0 && d.keep < total {
			out = append(out, d)
		}
	}
	for _, tw := range f.Settings.Towers.Towers() {
		_, enc := towerOf(m, tw)
		type kindUnits struct {
			kind  string
			n     func(l int) int // modules of layer l
			units func(l, i int) int
		}
		G := f.Settings.Groups
		kinds := []kindUnits{
			{KindHead, func(l int) int { return numHeads(enc.Layers[l]) }, func(int, int) int { return 1 }},
			{KindFFN, func(l int) int { return NumGroups(numNeurons(enc.Layers[l]), G) }, func(l, g int) int {
				lo, hi := NeuronGroup(numNeurons(enc.Layers[l]), G, g)
				return hi - lo
			}},
		}
		for _, k := range kinds {
			if !f.Has(tw, k.kind) {
				continue
			}
			var all decision
			allTotal := 0
			for l := range enc.Layers {
				var d decision
				total := 0
				for i := 0; i < k.n(l); i++ {
					id, err := get(Module{tw, k.kind, l, i})
					if err != nil {
						return nil, err
					}
					u := k.units(l, i)
					d.ids, d.units, total = append(d.ids, id), append(d.units, u), total+u
				}
				if r.Global {
					all.ids, all.units, allTotal = append(all.ids, d.ids...), append(all.units, d.units...), allTotal+total
				} else {
					add(d, total, r.Width)
				}
			}
			if r.Global {
				add(all, allTotal, r.Width)
			}
		}
		if f.Has(tw, KindLayer) {
			var d decision
			for l := range enc.Layers {
				id, err := get(Module{tw, KindLayer, l, 0})
				if err != nil {
					return nil, err
				}
				d.ids, d.units = append(d.ids, id), append(d.units, 1)
			}
			add(d, len(enc.Layers), r.Depth)
		}
	}
	return out, nil
}

// uncertain returns the modules (indices, ascending) to rescore: in each
// decision, ordered as the plans order (score descending, then layer, then
// index: sortRanked), every pair on different sides of the boundary (kept,
// partly kept, dropped) whose order is not certain, i.e. not both exact and
// with overlapping intervals score ± margin (exact modules: the point).
// mods gives each index's module for the tie-break.
func uncertain(ds []decision, mods []Module, v []float64, exact []bool, margin float64) []int {
	set := map[int]bool{}
	for _, d := range ds {
		order := append([]int(nil), d.ids...)
		units := map[int]int{}
		for k, id := range d.ids {
			units[id] = d.units[k]
		}
		sort.SliceStable(order, func(a, b int) bool {
			i, j := order[a], order[b]
			if v[i] != v[j] {
				return v[i] > v[j]
			}
			if mods[i].Layer != mods[j].Layer {
				return mods[i].Layer < mods[j].Layer
			}
			return mods[i].Index < mods[j].Index
		})
		side := make([]int, len(order)) // 0 kept, 1 partly kept, 2 dropped
		cum := 0
		for k, id := range order {
			before := cum
			cum += units[id]
			switch {
			case cum <= d.keep:
				side[k] = 0
			case before < d.keep:
				side[k] = 1
			default:
				side[k] = 2
			}
		}
		for a := range order {
			for b := a + 1; b < len(order); b++ {
				i, j := order[a], order[b]
				if side[a] == side[b] || (exact[i] && exact[j]) {
					continue
				}
				lo, hi := v[i], v[j]
				if !exact[i] {
					lo -= margin
				}
				if !exact[j] {
					hi += margin
				}
				if lo > hi {
					continue
				}
				for _, x := range []int{i, j} {
					if !exact[x] {
						set[x] = true
					}
				}
			}
		}
	}
	out := make([]int, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// scoreTwoStage is scoreForward for a reduced type with o.Rescore set (the
// mope metric): see the comment at the top of this file.
func scoreTwoStage(m *clip.Model, cal *Calib, o Options, f *ScoreFile, todo []ModuleScore, resumed bool, record func(ModuleScore) error) error {
	E := m.Config.ProjectionDim
	full := map[clip.Tower][]float32{}
	for _, tw := range clip.AllTowers { // one tower's weights packed at a time
		err := withEngine(m, o, infer.F32, clip.TowerSetOf(tw), func(e *infer.Engine) error {
			var err error
			full[tw], err = hostFeatures(e, m, tw, cal, o)
			return err
		})
		if err != nil {
			return err
		}
	}
	base := zScore(full[Vision], full[Text], cal, E)
	if resumed && base != f.Baseline {
		return fmt.Errorf("mope: resumed baseline %v differs from the recomputed %v (different data or build?)", f.Baseline, base)
	}
	f.Baseline = base
	eval := func(tw clip.Tower, feats []float32) float64 {
		if tw == Vision {
			return base - zScore(feats, full[Text], cal, E)
		}
		return base - zScore(full[Vision], feats, cal, E)
	}
	if len(todo) > 0 {
		err := withEngine(m, o, o.DType, o.Towers, func(e *infer.Engine) error {
			return dtypeModules(e, m, cal, o, todo, eval, record)
		})
		if err != nil {
			return err
		}
	}
	return rescoreExact(m, cal, o, f, eval)
}

// rescoreExact is stage 2: rounds of float32 rescoring until the plan's
// decisions are certain. It fills f.Rescored.
func rescoreExact(m *clip.Model, cal *Calib, o Options, f *ScoreFile, eval func(clip.Tower, []float32) float64) error {
	sort.Slice(f.Scores, func(i, j int) bool { return f.Scores[i].ID < f.Scores[j].ID })
	ds, err := planDecisions(m, f, *o.Rescore)
	if err != nil {
		return err
	}
	rep := &RescoreReport{Margin: o.Rescore.startMargin(o.DType, cal.NImg)}
	n := len(f.Scores)
	mods, v, exact := make([]Module, n), make([]float64, n), make([]bool, n)
	observe := func(i int) {
		s := f.Scores[i]
		mods[i], v[i], exact[i] = s.Module, s.Score, s.Reduced != nil
		if exact[i] {
			rep.Rescored++
			rep.MaxError = max(rep.MaxError, math.Abs(*s.Reduced-s.Score))
		}
	}
	for i := range f.Scores {
		observe(i)
	}
	rep.Margin = max(rep.Margin, MarginSafety*rep.MaxError)
	return withEngine(m, o, infer.F32, o.Towers, func(e *infer.Engine) error {
		for {
			unc := uncertain(ds, mods, v, exact, rep.Margin)
			if len(unc) == 0 {
				f.Rescored = rep
				return nil
			}
			rep.Rounds++
			pr := progress.New(o.Progress, fmt.Sprintf("f32 rescoring, round %d (margin %.3g)", rep.Rounds, rep.Margin), len(unc), progress.Options{Unit: "modules/s", Final: true})
			todo := make([]ModuleScore, len(unc))
			pos := map[int]int{}
			for k, i := range unc {
				todo[k] = f.Scores[i]
				pos[f.Scores[i].ID] = i
			}
			err := dtypeModules(e, m, cal, o, todo, eval, func(s ModuleScore) error {
				i := pos[s.ID]
				red := f.Scores[i].Score
				f.Scores[i].Score, f.Scores[i].Reduced = s.Score, &red
				observe(i)
				pr.Add(1, s.Module.String())
				return stopped(o, f)
			})
			if err != nil {
				return err
			}
			pr.Finish(fmt.Sprintf("f32 rescoring round %d: %d modules in %s", rep.Rounds, len(unc), pr.Elapsed().Round(1e6)))
			rep.Margin = max(rep.Margin, MarginSafety*rep.MaxError)
		}
	})
}

// stopped returns nil while o's context runs; once it is cancelled, it
// writes f (the scores so far, rescored ones with their Reduced values) to
// o.Checkpoint, from which a resumed run goes on, and returns the error.
func stopped(o Options, f *ScoreFile) error {
	if o.ctx == nil || o.ctx.Err() == nil {
		return nil
	}
	if o.Checkpoint != "" {
		if err := WriteScores(o.Checkpoint, f); err != nil {
			return err
		}
	}
	return fmt.Errorf("mope: float32 rescoring stopped (scores so far in %q): %w", o.Checkpoint, o.ctx.Err())
}

// withEngine runs fn with a fast engine of type dt for o holding the given
// towers' weights, closed (and its packed weights released) afterwards.
func withEngine(m *clip.Model, o Options, dt infer.DType, towers clip.TowerSet, fn func(*infer.Engine) error) error {
	e, err := infer.New(m, infer.Options{Threads: o.Threads, DType: dt, Towers: towers})
	if err != nil {
		return fmt.Errorf("mope: %v scoring engine: %w", dt, err)
	}
	defer e.Close()
	return fn(e)
}

// dtypeModules scores the modules todo on engine e layer by layer from the
// prefix cache (hostModules, as scoreForward does), handing each to record.
func dtypeModules(e *infer.Engine, m *clip.Model, cal *Calib, o Options, todo []ModuleScore, eval func(clip.Tower, []float32) float64, record func(ModuleScore) error) error {
	for _, tw := range clip.AllTowers {
		var mine []ModuleScore
		for _, s := range todo {
			if s.Tower == tw {
				mine = append(mine, s)
			}
		}
		if len(mine) == 0 {
			continue
		}
		err := hostModules(e, m, tw, cal, o, mine, func(s ModuleScore, feats []float32) error {
			s.Score = eval(tw, feats)
			return record(s)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RescoreMismatch says why a plan of the given width and depth ratios
// (depth when the file's layer scores choose the layers; 1 otherwise) made
// from f may differ from the plan of float32 scores, or returns "" when f
// is float32 or was made exact for that plan.
func RescoreMismatch(f *ScoreFile, width, depth float64, global bool) string {
	if f.Settings.DType == "" {
		return ""
	}
	if f.Settings.Rescore == "" {
		return fmt.Sprintf("scores are %s without float32 rescoring: the plan may differ from float32 scores'", f.Settings.DType)
	}
	r, err := ParseRescore(f.Settings.Rescore)
	if err != nil || r == nil {
		return fmt.Sprintf("unreadable rescore setting %q", f.Settings.Rescore)
	}
	hasWidth := slices.Contains(f.Settings.Kinds, KindHead) || slices.Contains(f.Settings.Kinds, KindFFN)
	var why []string
	if hasWidth && width < 1 && (width != r.Width || global != r.Global) {
		why = append(why, fmt.Sprintf("width %g%s", width, map[bool]string{true: " global"}[global]))
	}
	if depth < 1 && depth != r.Depth {
		why = append(why, fmt.Sprintf("depth %g", depth))
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%s scores were rescored in float32 for the plan %s, not %s: this plan may differ from float32 scores'", f.Settings.DType, f.Settings.Rescore, strings.Join(why, ", "))
}
