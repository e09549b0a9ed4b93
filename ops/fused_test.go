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
