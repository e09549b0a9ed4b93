package mope

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/mopeclip/mopeclip/clip"
)

// WidthOptions configure WidthPlan.
type WidthOptions struct {
	// Ratio is the fraction of heads and of FFN neurons kept: per layer
	// (uniform: layer l keeps round(Ratio·H_l) heads and round(Ratio·I_l)
	// neurons, each layer its own best), or per tower with Global.
	Ratio  float64
	Global bool
	// Towers to prune (default: the towers the scores cover).
	Towers clip.TowerSet
}

type ranked struct {
	layer, index int
	score        float64
}

// sortRanked orders by score (descending), then layer and index.
func sortRanked(r []ranked) {
	sort.SliceStable(r, func(i, j int) bool {
		if r[i].score != r[j].score {
			return r[i].score > r[j].score
		}
		if r[i].layer != r[j].layer {
			return r[i].layer < r[j].layer
		}
		return r[i].index < r[j].index
	})
}

func roundCount(ratio float64, n int) int {
	return min(n, max(0, int(math.Round(ratio*float64(n)))))
}

// WidthPlan keeps the best heads and FFN neurons of m by the scores: head
// and FFN-group scores of every tower the scores cover (a kind without
// scores is left alone). A neuron has its group's score; within a group,
// lower-numbered neurons come first, so a layer may keep part of a group.
func WidthPlan(m *clip.Model, f *ScoreFile, o WidthOptions) (*Plan, error) {
	if o.Ratio < 0 || o.Ratio > 1 {
		return nil, fmt.Errorf("mope: width ratio %v outside [0,1]", o.Ratio)
	}
	towers := o.Towers
	if towers == 0 {
		towers = f.Settings.Towers
	}
	sc := f.Lookup()
	plan := &Plan{}
	for _, tw := range towers.Towers() {
		_, enc := towerOf(m, tw)
		L := len(enc.Layers)
		tp := &TowerPlan{}
		if f.Has(tw, KindHead) {
			cand := make([][]ranked, L)
			for l, b := range enc.Layers {
				for h := 0; h < numHeads(b); h++ {
					s, ok := sc[Module{tw, KindHead, l, h}]
					if !ok {
						return nil, fmt.Errorf("mope: no score for %v", Module{tw, KindHead, l, h})
					}
					cand[l] = append(cand[l], ranked{l, h, s})
				}
			}
			tp.Heads = selectUnits(cand, o.Ratio, o.Global)
		}
		if f.Has(tw, KindFFN) {
			G := f.Settings.Groups
			cand := make([][]ranked, L)
			for l, b := range enc.Layers {
				I := numNeurons(b)
				for g := 0; g < NumGroups(I, G); g++ {
					s, ok := sc[Module{tw, KindFFN, l, g}]
					if !ok {
						return nil, fmt.Errorf("mope: no score for %v", Module{tw, KindFFN, l, g})
					}
					lo, hi := NeuronGroup(I, G, g)
					for i := lo; i < hi; i++ {
						cand[l] = append(cand[l], ranked{l, i, s})
					}
				}
			}
			tp.Neurons = selectUnits(cand, o.Ratio, o.Global)
		}
		plan.setTower(tw, tp)
	}
	return plan, nil
}

// selectUnits keeps round(ratio·n) units per layer, or of the whole tower
// when global; the result lists kept indices per layer, ascending.
func selectUnits(cand [][]ranked, ratio float64, global bool) [][]int {
	keep := make([][]int, len(cand))
	for l := range keep {
		keep[l] = []int{}
	}
	if global {
		var all []ranked
		for _, c := range cand {
			all = append(all, c...)
		}
		sortRanked(all)
		for _, r := range all[:roundCount(ratio, len(all))] {
			keep[r.layer] = append(keep[r.layer], r.index)
		}
	} else {
		for l, c := range cand {
			c = append([]ranked(nil), c...)
			sortRanked(c)
			for _, r := range c[:roundCount(ratio, len(c))] {
				keep[l] = append(keep[l], r.index)
			}
		}
	}
	for l := range keep {
		sort.Ints(keep[l])
	}
	return keep
}

// DepthPlan keeps round(ratio·L) layers of each tower with the highest
// layer scores (ties: the earlier layer wins). scores holds KindLayer
// modules numbered in m.
func DepthPlan(m *clip.Model, scores map[Module]float64, ratio float64, towers clip.TowerSet) (*Plan, error) {
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("mope: depth ratio %v outside [0,1]", ratio)
	}
	plan := &Plan{}
	for _, tw := range towers.Towers() {
		_, enc := towerOf(m, tw)
		var c []ranked
		for l := range enc.Layers {
			s, ok := scores[Module{tw, KindLayer, l, 0}]
			if !ok {
				return nil, fmt.Errorf("mope: no layer score for %v", Module{tw, KindLayer, l, 0})
			}
			c = append(c, ranked{l, 0, s})
		}
		sortRanked(c)
		var keep []int
		for _, r := range c[:roundCount(ratio, len(c))] {
			keep = append(keep, r.layer)
		}
		sort.Ints(keep)
		if keep == nil {
			keep = []int{}
		}
		plan.setTower(tw, &TowerPlan{Layers: keep})
	}
	return plan, nil
}

// PruneOptions configure PruneModel.
type PruneOptions struct {
	// Width and Depth are kept fractions (1: keep all), used when no target
	// is set.
	Width, Depth float64
	Global       bool
	// TargetFLOPs / TargetParams, when > 0, ask for that fraction of the
	// pruned towers' FLOPs (vision per image, text per 77-token text) or
	// parameters; Width and Depth are then solved (see SolveTarget).
	TargetFLOPs, TargetParams float64
	// MinWidth is the smallest width the solver accepts before it starts
	// removing layers (default 0.5).
	MinWidth float64
	// Towers to prune (default: those the scores cover).
	Towers clip.TowerSet
	// Calib, when set, is used to rescore layers on the width-pruned model
	// (with the score file's metric) before depth pruning; otherwise the
	// layer scores of the file (computed on the unpruned model) are used.
	// Metrics that need no data (magnitude, random) always rescore.
	Calib    *Calib
	Batch    int
	Progress io.Writer
}

// PruneReport says what PruneModel did.
type PruneReport struct {
	Towers       clip.TowerSet `json:"towers"`
	Width        float64       `json:"width"`
	Depth        float64       `json:"depth"`
	DepthScores  string        `json:"depth_scores"` // "rescored", "file", "none"
	FLOPsBefore  float64       `json:"gflops_before"`
	FLOPsAfter   float64       `json:"gflops_after"`
	ParamsBefore int           `json:"params_before"`
	ParamsAfter  int           `json:"params_after"`
}

// Cost is the cost PruneModel's targets measure for the given towers: GFLOPs
// (vision: one image; text: one text at the context length) or parameters.
func Cost(cfg *clip.Config, towers clip.TowerSet, params bool) float64 {
	var c float64
	for _, tw := range towers.Towers() {
		if params {
			c += float64(TowerParams(cfg, tw))
		} else if tw == Vision {
			c += cfg.VisionMACs().GFLOPs()
		} else {
			c += cfg.TextMACs(0).GFLOPs()
		}
	}
	return c
}

// TowerParams counts a tower's parameters (projection included) from its
// config alone.
func TowerParams(cfg *clip.Config, tw clip.Tower) int {
	t, C, E := &cfg.Vision, cfg.Vision.HiddenSize, cfg.ProjectionDim
	n := 0
	if tw == Vision {
		T := t.NumPatches() + 1
		n = C + C*3*t.PatchSize*t.PatchSize + T*C + 4*C + C*E
	} else {
		t, C = &cfg.Text, cfg.Text.HiddenSize
		n = t.VocabSize*C + t.MaxPositionEmbeddings*C + 2*C + C*E
	}
	for l := 0; l < t.NumHiddenLayers; l++ {
		n += LayerParams(t, l)
	}
	return n
}

// LayerParams counts the parameters of layer l of a tower from its config:
// two layer norms, the kept heads' q/k/v/out projections, the MLP.
func LayerParams(t *clip.TowerConfig, l int) int {
	C, D := t.HiddenSize, t.HeadDim()
	n := 4 * C
	if h := t.Heads(l); h > 0 {
		n += 4*C*h*D + 3*h*D + C
	}
	if I := t.Intermediate(l); I > 0 {
		n += 2*C*I + I + C
	}
	return n
}

// shapeAfter returns the config m would have after plan (widths and
// layers only; no weights are touched).
func shapeAfter(m *clip.Model, plan *Plan) *clip.Config {
	cfg := m.Config.Clone()
	for _, tw := range clip.AllTowers {
		tp := plan.tower(tw)
		t, enc := towerOf(m, tw)
		tc := &cfg.Vision
		if tw == Text {
			tc = &cfg.Text
		}
		heads, inter := make([]int, len(enc.Layers)), make([]int, len(enc.Layers))
		for l, b := range enc.Layers {
			heads[l], inter[l] = numHeads(b), numNeurons(b)
			if tp != nil && tp.Heads != nil && tp.Heads[l] != nil {
				heads[l] = len(tp.Heads[l])
			}
			if tp != nil && tp.Neurons != nil && tp.Neurons[l] != nil {
				inter[l] = len(tp.Neurons[l])
			}
		}
		if tp != nil && tp.Layers != nil {
			var h2, i2 []int
			for _, l := range tp.Layers {
				h2, i2 = append(h2, heads[l]), append(i2, inter[l])
			}
			heads, inter = h2, i2
		}
		_ = t
		tc.NumHiddenLayers, tc.LayerHeads, tc.LayerIntermediate, tc.TeacherLayers = len(heads), heads, inter, nil
	}
	return cfg
}

// mergePlans combines a width plan and a depth plan (depth indices refer to
// the layers of m, which width pruning does not renumber).
func mergePlans(w, d *Plan) *Plan {
	out := &Plan{}
	for _, tw := range clip.AllTowers {
		a, b := w.tower(tw), d.tower(tw)
		if a == nil && b == nil {
			continue
		}
		tp := &TowerPlan{}
		if a != nil {
			tp.Heads, tp.Neurons = a.Heads, a.Neurons
		}
		if b != nil {
			tp.Layers = b.Layers
		}
		out.setTower(tw, tp)
	}
	return out
}

// SolveTarget finds width and depth for a cost target (a fraction of the
// towers' cost, FLOPs or parameters): for depth = L, L−1, ... layers it
// finds the largest width on a 0.01 grid whose pruned model meets the
// target, and returns the first (deepest) solution whose width is at least
// minWidth — width is pruned first, depth only when width alone would go
// below minWidth. If no depth allows minWidth, the feasible (width, depth)
// with the largest cost wins. Layers removed in the estimate are the lowest
// by the file's layer scores when present, else the last ones; with uniform
// width every layer costs the same, so the choice does not change the
// estimate.
func SolveTarget(m *clip.Model, f *ScoreFile, towers clip.TowerSet, target float64, params, global bool, minWidth float64) (width, depth float64, err error) {
	if target <= 0 || target > 1 {
		return 0, 0, fmt.Errorf("mope: target %v outside (0,1]", target)
	}
	full := Cost(m.Config, towers, params)
	L := 0
	for _, tw := range towers.Towers() {
		_, enc := towerOf(m, tw)
		L = max(L, len(enc.Layers))
	}
	sc := f.Lookup()
	bestCost, bw, bd := -1.0, 0.0, 0.0
	plans := map[int]*Plan{}
	for k := L; k >= 1; k-- {
		d := float64(k) / float64(L)
		for j := 100; j >= 1; j-- {
			w := float64(j) / 100
			wp := plans[j]
			if wp == nil {
				if wp, err = WidthPlan(m, f, WidthOptions{Ratio: w, Global: global, Towers: towers}); err != nil {
					return 0, 0, err
				}
				plans[j] = wp
			}
			dp := &Plan{}
			for _, tw := range towers.Towers() {
				_, enc := towerOf(m, tw)
				layerScores := map[Module]float64{}
				for l := range enc.Layers {
					s, ok := sc[Module{tw, KindLayer, l, 0}]
					if !ok {
						s = -float64(l) // drop the last layers
					}
					layerScores[Module{tw, KindLayer, l, 0}] = s
				}
				p, err := DepthPlan(m, layerScores, d, clip.TowerSetOf(tw))
				if err != nil {
					return 0, 0, err
				}
				dp.setTower(tw, p.tower(tw))
			}
			c := Cost(shapeAfter(m, mergePlans(wp, dp)), towers, params)
			if c <= target*full*(1+1e-9) {
				if w >= minWidth {
					return w, d, nil
				}
				if c > bestCost {
					bestCost, bw, bd = c, w, d
				}
				break
			}
		}
	}
	if bestCost < 0 {
		return 0, 0, fmt.Errorf("mope: no width/depth meets %.3g of the cost", target)
	}
	return bw, bd, nil
}

// PruneModel prunes m by the scores: width first (WidthPlan), then depth
// (layers rescored on the width-pruned model when o.Calib is set or the
// metric needs no data, else the file's layer scores). It returns the new
// model; m is not changed.
func PruneModel(m *clip.Model, f *ScoreFile, o PruneOptions) (*clip.Model, *PruneReport, error) {
	towers := o.Towers
	if towers == 0 {
		towers = f.Settings.Towers
	}
	if fp := Fingerprint(m); fp != f.Settings.Model {
		return nil, nil, fmt.Errorf("mope: scores were computed for model %s, this model is %s", f.Settings.Model, fp)
	}
	if o.MinWidth == 0 {
		o.MinWidth = 0.5
	}
	rep := &PruneReport{Towers: towers, Width: o.Width, Depth: o.Depth, DepthScores: "none"}
	useParams := o.TargetParams > 0
	rep.FLOPsBefore, rep.ParamsBefore = Cost(m.Config, towers, false), int(Cost(m.Config, towers, true))
	if o.TargetFLOPs > 0 || o.TargetParams > 0 {
		t := o.TargetFLOPs
		if useParams {
			t = o.TargetParams
		}
		w, d, err := SolveTarget(m, f, towers, t, useParams, o.Global, o.MinWidth)
		if err != nil {
			return nil, nil, err
		}
		rep.Width, rep.Depth = w, d
	}
	if rep.Width <= 0 || rep.Width > 1 || rep.Depth <= 0 || rep.Depth > 1 {
		return nil, nil, fmt.Errorf("mope: width %v and depth %v must be in (0,1]", rep.Width, rep.Depth)
	}
	wp, err := WidthPlan(m, f, WidthOptions{Ratio: rep.Width, Global: o.Global, Towers: towers})
	if err != nil {
		return nil, nil, err
	}
	pruned, err := Apply(m, wp)
	if err != nil {
		return nil, nil, err
	}
	if rep.Depth < 1 {
		var layerScores map[Module]float64
		needData := f.Settings.Metric != "magnitude" && f.Settings.Metric != "random"
		if o.Calib != nil || !needData {
			s, err := Score(pruned, o.Calib, Options{Metric: f.Settings.Metric, Towers: towers, Kinds: []string{KindLayer},
				Groups: f.Settings.Groups, Batch: o.Batch, Seed: f.Settings.Seed, Progress: o.Progress})
			if err != nil {
				return nil, nil, fmt.Errorf("mope: rescoring layers: %w", err)
			}
			layerScores, rep.DepthScores = s.Lookup(), "rescored"
		} else {
			for _, tw := range towers.Towers() {
				if !f.Has(tw, KindLayer) {
					return nil, nil, fmt.Errorf("mope: depth pruning of %s needs layer scores: pass calibration data (--data) or score layers", tw)
				}
			}
			layerScores, rep.DepthScores = f.Lookup(), "file"
		}
		dp, err := DepthPlan(pruned, layerScores, rep.Depth, towers)
		if err != nil {
			return nil, nil, err
		}
		if pruned, err = Apply(pruned, dp); err != nil {
			return nil, nil, err
		}
	}
	rep.FLOPsAfter, rep.ParamsAfter = Cost(pruned.Config, towers, false), int(Cost(pruned.Config, towers, true))
	return pruned, rep, nil
}
