package mope

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"
)

// TestModesParseStringSet: every mode's names round-trip through Parse,
// String, Set (as a flag.Value) and JSON; unknown names are errors.
func TestModesParseStringSet(t *testing.T) {
	type mode = flag.Value
	cases := []struct {
		name  string
		names []string
		value func() mode
		bad   []string
	}{
		{"metric", []string{"mope", "magnitude", "taylor", "random", "unimodal"}, func() mode { return new(Metric) }, []string{"", "MoPE", "scratch"}},
		{"stage", []string{"finetune", "pretrain"}, func() mode { return new(Stage) }, []string{"", "train"}},
		{"order", []string{"width-depth", "depth-width", "width"}, func() mode { return new(Order) }, []string{"", "depth"}},
		{"engine", []string{"auto", "fast", "ref"}, func() mode { return new(Engine) }, []string{"gpu", "Fast"}},
	}
	for _, c := range cases {
		for _, n := range c.names {
			v := c.value()
			if err := v.Set(n); err != nil || v.String() != n {
				t.Errorf("%s: Set(%q) → %q, %v", c.name, n, v.String(), err)
			}
			b, err := json.Marshal(v)
			w := c.value()
			if err != nil || json.Unmarshal(b, w) != nil || w.String() != v.String() {
				t.Errorf("%s %q: JSON %s round trip gave %q (%v)", c.name, n, b, w.String(), err)
			}
		}
		for _, n := range c.bad {
			if err := c.value().Set(n); err == nil {
				t.Errorf("%s: Set(%q) accepted", c.name, n)
			}
		}
	}
	if m, _ := ParseMetric("taylor"); !m.NeedsData() || m.RunsTowers() {
		t.Error("taylor needs data and runs no tower forward")
	}
	for _, m := range []Metric{MetricMagnitude, MetricRandom} {
		if m.NeedsData() || m.RunsTowers() {
			t.Errorf("%s is data-free", m)
		}
	}
	// Only taylor reads gradients: mope score drops them for the others.
	for _, m := range []Metric{MetricMoPE, MetricMagnitude, MetricTaylor, MetricRandom, MetricUnimodal} {
		if m.NeedsGrads() != (m == MetricTaylor) {
			t.Errorf("%s.NeedsGrads() = %v", m, m.NeedsGrads())
		}
	}
	if e, err := ParseEngine(""); err != nil || e != EngineAuto {
		t.Errorf("ParseEngine(\"\") = %q, %v", e, err)
	}
}

func TestParseTowersCanonical(t *testing.T) {
	for in, want := range map[string]string{"both": "vision,text", "text,vision": "vision,text", "image": "vision", "text": "text"} {
		got, err := ParseTowers(in)
		if err != nil || strings.Join(got.Names(), ",") != want {
			t.Errorf("ParseTowers(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseTowers("audio"); err == nil {
		t.Error("ParseTowers(audio) accepted")
	}
}
