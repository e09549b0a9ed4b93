package ops

import (
	"math"
	"testing"
)

func TestActivationParseString(t *testing.T) {
	for _, a := range []Activation{ActNone, ActQuickGELU, ActGELU} {
		got, err := ParseActivation(a.String())
		if err != nil || got != a {
			t.Errorf("ParseActivation(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
	if _, err := ParseActivation("relu"); err == nil {
		t.Error("ParseActivation(relu) succeeded")
	}
	if s := Activation(7).String(); s != "Activation(7)" {
		t.Errorf("Activation(7).String() = %q", s)
	}
}

func TestGradNormFromSq(t *testing.T) {
	s := 12345.678901234567
	hi := float32(s)
	lo := float32(s - float64(hi))
	if got, want := GradNormFromSq([]float32{hi, lo}), math.Sqrt(s); math.Abs(got-want) > 1e-12*want {
		t.Errorf("GradNormFromSq = %.17g, want %.17g", got, want)
	}
}

func TestAdamWFactors(t *testing.T) {
	k := NewAdamWConsts(0.9, 0.999, 1e-8, 1e-3, 1)
	want := AdamWConsts{B1: 0.9, B1c: float32(1 - 0.9), B2: 0.999, B2c: float32(1 - 0.999),
		StepSize: float32(1e-3 / (1 - 0.9)), InvBC2: float32(1 / math.Sqrt(1-0.999)), Eps: 1e-8}
	if k != want {
		t.Errorf("NewAdamWConsts = %+v, want %+v", k, want)
	}
	for _, c := range []struct {
		lr, wd  float64
		noDecay bool
		want    float32
	}{{1e-3, 0.01, false, float32(1 - 1e-3*0.01)}, {1e-3, 0.01, true, 1}, {1e-3, 0, false, 1}} {
		if got := AdamWDecay(c.lr, c.wd, c.noDecay); got != c.want {
			t.Errorf("AdamWDecay(%v, %v, %v) = %v, want %v", c.lr, c.wd, c.noDecay, got, c.want)
		}
	}
}
