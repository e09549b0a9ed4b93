package grid

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mopeclip/mopeclip/mope"
)

// What a seed controls. Seed s of a row sets (1) the order of its
// distillation batches (mope.DistillOptions.Seed: which training pairs and
// captions step k draws), (2) the random metric's scores (the random row's
// pruned model), and for a from-scratch row (3) its initialisation and its
// batch order. Pruning with the other metrics is deterministic and a
// distilled student starts from the pruned teacher with no other
// randomness (no dropout), so the batch order is the only source of
// run-to-run variation a distilled row has: varying it measures that
// variation. Seed 1 is the grid's single seed of earlier releases (its rows
// keep their names and cached steps); the teacher-output cache is keyed by
// the seed, so each seed's batches run the teacher once and are shared by
// every row of that seed.

// SeedSuffix is the suffix of a seed's row names and directories: "" for
// seed 1 (the grid's single seed), "-seed<k>" otherwise.
func SeedSuffix(seed uint64) string {
	if seed == 1 {
		return ""
	}
	return fmt.Sprintf("-seed%d", seed)
}

// MaxSeeds is the most seeds a grid runs (each seed is a whole grid).
const MaxSeeds = 20

// SeedList is the seeds of a grid of n seeds: 1, 2, …, n (n < 1: 1).
func SeedList(n int) []uint64 {
	s := []uint64{1}
	for k := 2; k <= n; k++ {
		s = append(s, uint64(k))
	}
	return s
}

// Stat is a sample's mean and standard deviation (n − 1 in the
// denominator; 0 for one value).
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
	N    int     `json:"n"`
}

// StatOf is the mean and standard deviation of xs.
func StatOf(xs []float64) Stat {
	s := Stat{N: len(xs)}
	if s.N == 0 {
		return s
	}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(s.N)
	if s.N > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(ss / float64(s.N-1))
	}
	return s
}

// String is "mean ± sd" to one decimal ("mean" for one value).
func (s Stat) String() string {
	if s.N < 2 {
		return fmt.Sprintf("%.1f", s.Mean)
	}
	return fmt.Sprintf("%.1f ± %.1f", s.Mean, s.SD)
}

// Summary is one case over its seeds: mean and standard deviation of the
// recall of its seeds' models.
type Summary struct {
	Name   string     `json:"name"`
	Towers string     `json:"towers"`
	Target float64    `json:"target_flops"`
	Method string     `json:"method"`
	Order  mope.Order `json:"order"`
	Seeds  []uint64   `json:"seeds"`
	Params int        `json:"params"`
	// GFLOPsI and GFLOPsT are the same for every seed (the pruned shape
	// does not depend on it); images/s is the mean of the seeds' models.
	GFLOPsI  float64 `json:"image_gflops"`
	GFLOPsT  float64 `json:"text_gflops"`
	ImgPerS  float64 `json:"images_per_s"`
	R1       Stat    `json:"mean_r1"`
	R5       Stat    `json:"mean_r5"`
	PrunedR1 *Stat   `json:"pruned_mean_r1,omitempty"`
	// Errors are the failed measurements of the seeds' rows.
	Errors []string `json:"errors,omitempty"`
}

// caseName is a row's case name: its name without the seed suffix.
func caseName(r *Row) string {
	return r.Name[:len(r.Name)-len(SeedSuffix(r.seed()))]
}

// seed is the row's seed (rows of earlier releases have none: seed 1).
func (r *Row) seed() uint64 {
	if r.Seed == 0 {
		return 1
	}
	return r.Seed
}

// Summarize groups rows by case (the teacher's row is skipped), in the
// order of each case's first row.
func Summarize(rows []*Row) []*Summary {
	var out []*Summary
	idx := map[string]*Summary{}
	r1s, r5s, prs := map[*Summary][]float64{}, map[*Summary][]float64{}, map[*Summary][]float64{}
	for _, r := range rows {
		if r.Method == MethodTeacher {
			continue
		}
		name := caseName(r)
		s := idx[name]
		if s == nil {
			s = &Summary{Name: name, Towers: r.Towers, Target: r.Target, Method: r.Method, Order: r.Order, Params: r.Params,
				GFLOPsI: r.GFLOPsI, GFLOPsT: r.GFLOPsT}
			idx[name] = s
			out = append(out, s)
		}
		s.Seeds = append(s.Seeds, r.seed())
		s.ImgPerS += r.ImgPerS
		r1s[s], r5s[s] = append(r1s[s], r.R1), append(r5s[s], r.R5)
		if r.PrunedR1 != nil {
			prs[s] = append(prs[s], *r.PrunedR1)
		}
		for _, e := range r.Errors {
			s.Errors = append(s.Errors, fmt.Sprintf("seed %d: %s", r.seed(), e))
		}
	}
	for _, s := range out {
		s.ImgPerS /= float64(len(s.Seeds))
		s.R1, s.R5 = StatOf(r1s[s]), StatOf(r5s[s])
		if p := prs[s]; len(p) > 0 {
			st := StatOf(p)
			s.PrunedR1 = &st
		}
	}
	return out
}

// Claim is one of the paper's claims the grid tests.
type Claim int

// The claims, each a comparison of a setting's MoPE width-then-depth model
// with other models of the setting.
const (
	// ClaimMetric: MoPE beats the other importance metrics.
	ClaimMetric Claim = iota
	// ClaimOrder: width then depth beats the other pruning orders.
	ClaimOrder
	// ClaimScratch: pruned + distilled beats trained from scratch.
	ClaimScratch
)

var claimNames = [...]string{ClaimMetric: "MoPE ≥ other importance metrics", ClaimOrder: "width-then-depth ≥ other orders",
	ClaimScratch: "pruned + distilled ≥ trained from scratch"}

func (c Claim) String() string {
	if c < 0 || int(c) >= len(claimNames) {
		return fmt.Sprintf("Claim(%d)", int(c))
	}
	return claimNames[c]
}

// claimOf is the claim a comparison of the MoPE width-then-depth model
// with a model of method tests.
func claimOf(method string) Claim {
	switch {
	case method == MethodScratch:
		return ClaimScratch
	case method == "mope":
		return ClaimOrder
	default:
		return ClaimMetric
	}
}

// Verdict is what a paired comparison says about a claim.
type Verdict int

// Verdicts (VerdictRule states how they are decided).
const (
	// VerdictUntested: fewer than two paired seeds, no interval.
	VerdictUntested Verdict = iota
	// VerdictHolds: the interval of the mean difference is above 0.
	VerdictHolds
	// VerdictFails: the interval is below 0.
	VerdictFails
	// VerdictNoise: the interval contains 0.
	VerdictNoise
)

var verdictNames = [...]string{VerdictUntested: "untested (one seed)", VerdictHolds: "holds", VerdictFails: "does not hold",
	VerdictNoise: "within noise"}

func (v Verdict) String() string {
	if v < 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("Verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// MarshalText writes the verdict's name (claims.json).
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// MarshalText writes the claim's name (claims.json).
func (c Claim) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Confidence is the two-sided confidence level of the intervals.
const Confidence = 0.95

// VerdictRule states how a Verdict is decided (REPORT.md).
const VerdictRule = "d = mean R@1 of the MoPE width-then-depth model − mean R@1 of the other model, paired by seed (same seed: same distillation batches); " +
	"interval: mean(d) ± t(0.975, n−1) · sd(d)/√n, the 95 % Student-t interval over the n seeds. " +
	"holds: the interval is above 0; does not hold: below 0; within noise: it contains 0; untested: fewer than 2 seeds."

// Comparison is a paired comparison (same seeds) of a setting's MoPE
// width-then-depth model with another model of the setting.
type Comparison struct {
	Towers string  `json:"towers"`
	Target float64 `json:"target_flops"`
	Claim  Claim   `json:"claim"`
	Ref    string  `json:"ref"`
	Other  string  `json:"other"`
	// Seeds are the seeds both models have; Diffs their differences of
	// mean R@1 (Ref − Other, points), in Seeds order.
	Seeds []uint64  `json:"seeds"`
	Diffs []float64 `json:"diffs"`
	// Mean and SD of Diffs; Lo and Hi the Confidence interval of Mean
	// (NaN-free: equal to Mean with fewer than 2 seeds).
	Mean    float64 `json:"mean_diff"`
	SD      float64 `json:"sd_diff"`
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	Verdict Verdict `json:"verdict"`
}

// TQuantile is the p quantile of Student's t distribution with dof
// degrees of freedom.
func TQuantile(p float64, dof int) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(dof)}.Quantile(p)
}

// Paired compares ref with other over the seeds both have (rows of one
// case each, any order) and decides the verdict (VerdictRule).
func Paired(ref, other []*Row) Comparison {
	byseed := map[uint64]*Row{}
	for _, r := range other {
		byseed[r.seed()] = r
	}
	var c Comparison
	for _, r := range ref {
		if o := byseed[r.seed()]; o != nil {
			c.Seeds = append(c.Seeds, r.seed())
			c.Diffs = append(c.Diffs, r.R1-o.R1)
		}
	}
	st := StatOf(c.Diffs)
	c.Mean, c.SD, c.Lo, c.Hi = st.Mean, st.SD, st.Mean, st.Mean
	n := len(c.Diffs)
	if n < 2 {
		c.Verdict = VerdictUntested
		return c
	}
	h := TQuantile(1-(1-Confidence)/2, n-1) * st.SD / math.Sqrt(float64(n))
	c.Lo, c.Hi = st.Mean-h, st.Mean+h
	switch {
	case c.Lo > 0:
		c.Verdict = VerdictHolds
	case c.Hi < 0:
		c.Verdict = VerdictFails
	default:
		c.Verdict = VerdictNoise
	}
	return c
}

// Compare makes the paired comparisons of every setting: its MoPE
// width-then-depth case against each other metric, each other order and
// the from-scratch model, in the order of the rows' cases.
func Compare(rows []*Row) []Comparison {
	byCase := map[string][]*Row{}
	var names []string
	for _, r := range rows {
		if r.Method == MethodTeacher {
			continue
		}
		n := caseName(r)
		if byCase[n] == nil {
			names = append(names, n)
		}
		byCase[n] = append(byCase[n], r)
	}
	var out []Comparison
	for _, claim := range []Claim{ClaimMetric, ClaimOrder, ClaimScratch} {
		for _, refName := range names {
			ref := byCase[refName][0]
			if ref.Method != "mope" || ref.Order != mope.OrderWidthDepth {
				continue
			}
			for _, n := range names {
				o := byCase[n][0]
				if n == refName || o.setting() != ref.setting() || claimOf(o.Method) != claim {
					continue
				}
				c := Paired(byCase[refName], byCase[n])
				c.Towers, c.Target, c.Claim, c.Ref, c.Other = ref.Towers, ref.Target, claim, refName, n
				out = append(out, c)
			}
		}
	}
	// Settings first, then claims: the report reads one setting at a time.
	slices.SortStableFunc(out, func(a, b Comparison) int {
		return settingIndex(names, byCase, a) - settingIndex(names, byCase, b)
	})
	return out
}

// settingIndex is the position of c's setting among the cases' first
// appearances (for a stable setting-major order).
func settingIndex(names []string, byCase map[string][]*Row, c Comparison) int {
	for i, n := range names {
		if r := byCase[n][0]; r.Towers == c.Towers && r.Target == c.Target {
			return i
		}
	}
	return len(names)
}
