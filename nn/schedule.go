package nn

import "math"

// CosineSchedule is a linear warm-up followed by a cosine decay, for steps
// counted from 0:
//
//	step < Warmup:          Peak · (step+1) / Warmup
//	Warmup ≤ step < Total:  Min + (Peak-Min) · (1 + cos(π·(step-Warmup)/(Total-Warmup))) / 2
//	step ≥ Total:           Min
//
// So the first step already has a non-zero rate, the peak is reached at step
// Warmup, and the rate approaches Min at step Total.
type CosineSchedule struct {
	Warmup, Total int
	Peak, Min     float64
}

// LR returns the learning rate of step (0-based).
func (s CosineSchedule) LR(step int) float64 {
	if step < 0 {
		step = 0
	}
	if step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	if step >= s.Total || s.Total <= s.Warmup {
		return s.Min
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	return s.Min + (s.Peak-s.Min)*0.5*(1+math.Cos(math.Pi*progress))
}
