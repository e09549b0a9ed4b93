package cuda

import "testing"

func TestParseDevice(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Device
		name string
		ok   bool
	}{
		{"cpu", CPU, "cpu", true},
		{"cuda", GPU, "cuda", true},
		{"cuda:fp32", GPU, "cuda", true},
		{"cuda:tf32", GPUTF32, "cuda:tf32", true},
		{"", CPU, "", false},
		{"gpu", CPU, "", false},
		{"cpu:tf32", CPU, "", false},
		{"cuda:", CPU, "", false},
		{"cuda:fp16", CPU, "", false},
		{"CUDA", CPU, "", false},
		{"cuda:tf32:x", CPU, "", false},
	} {
		got, err := ParseDevice(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDevice(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		if got.String() != c.name {
			t.Errorf("%q: String() = %q, want %q", c.in, got.String(), c.name)
		}
		var d Device
		b, _ := got.MarshalText()
		if err := d.UnmarshalText(b); err != nil || d != got {
			t.Errorf("%q: text round trip gave %v, %v", c.in, d, err)
		}
	}
}
