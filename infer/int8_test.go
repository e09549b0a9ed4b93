package infer

import "testing"

func TestParseDTypeInt8(t *testing.T) {
	for _, d := range []DType{F32, BF16, INT8} {
		got, err := ParseDType(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDType(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDType("int4"); err == nil {
		t.Error("ParseDType(int4): no error")
	}
}
