package mope

import (
	"fmt"

	"github.com/mopeclip/mopeclip/clip/zeroshot"
)

// Recall is a model's image–text retrieval recall in percent with the
// summaries the project reports, each under one name: R1 is the mean of
// TR@1 and IR@1 (what the demo, the pipeline and validation call "mean
// R@1"), R5 the same at 5, Mean the mean of all six recalls (RSUM/6).
type Recall struct {
	zeroshot.RetrievalMetrics
	R1   float64 `json:"r1"`
	R5   float64 `json:"r5"`
	Mean float64 `json:"mean"`
}

// RecallOf fills in the summaries of r.
func RecallOf(r zeroshot.RetrievalMetrics) Recall {
	return Recall{RetrievalMetrics: r, R1: (r.TR1 + r.IR1) / 2, R5: (r.TR5 + r.IR5) / 2, Mean: r.Mean()}
}

// Scalars returns the recall as the named scalars of a training curve.
func (r Recall) Scalars() map[string]float64 {
	return map[string]float64{"tr1": r.TR1, "tr5": r.TR5, "tr10": r.TR10, "ir1": r.IR1, "ir5": r.IR5, "ir10": r.IR10,
		"r1": r.R1, "r5": r.R5, "mean": r.Mean}
}

// RecallFromScalars reads back what Scalars wrote (a training run's last
// validation); ok is false when v holds no recall.
func RecallFromScalars(v map[string]float64) (r *Recall, ok bool) {
	if _, ok := v["r1"]; !ok {
		return nil, false
	}
	m := zeroshot.RetrievalMetrics{TR1: v["tr1"], TR5: v["tr5"], TR10: v["tr10"], IR1: v["ir1"], IR5: v["ir5"], IR10: v["ir10"]}
	rec := RecallOf(m)
	rec.R1, rec.R5, rec.Mean = v["r1"], v["r5"], v["mean"]
	return &rec, true
}

// String is the short form used in logs.
func (r Recall) String() string {
	return fmt.Sprintf("mean R@1 %.1f R@5 %.1f (TR@1 %.1f IR@1 %.1f), mean of six %.1f", r.R1, r.R5, r.TR1, r.IR1, r.Mean)
}
