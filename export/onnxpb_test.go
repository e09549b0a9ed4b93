package export

import (
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded protobuf field: a varint, fixed32 or bytes value.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	v     uint64
	bytes []byte
}

// fields decodes one message level, failing on malformed input.
func fields(t *testing.T, b []byte) []field {
	t.Helper()
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

func only(t *testing.T, fs []field, num protowire.Number) []field {
	t.Helper()
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

// TestWireFormat decodes a small model with protowire and checks it against
// onnx.proto's field numbers and types.
func TestWireFormat(t *testing.T) {
	b := newBuilder("g")
	b.g.Inputs = []ValueInfo{{Name: "x", DType: Float, Shape: []Dim{{Param: "batch"}, {Value: 3}}}}
	y := b.op("y", "Gemm", []string{"x", b.weight("w", []float32{1, -2, 0.5, 4, 5, 6}, 2, 3)}, AttrI("transB", 1))
	b.op("z", "LayerNormalization", []string{y}, AttrF("epsilon", 1e-5), AttrInts("perm", -1, 2))
	b.g.Outputs = []ValueInfo{{Name: "z", DType: Float, Shape: []Dim{{Param: "batch"}, {Value: 2}}}}
	mp := &ModelProto{IRVersion: IRVersion, Opset: Opset, ProducerName: "mopeclip", Graph: b.g, Metadata: [][2]string{{"k", "v"}}}
	top := fields(t, mp.Marshal())

	if f := only(t, top, 1); len(f) != 1 || f[0].v != IRVersion {
		t.Fatalf("ir_version: %+v", f)
	}
	opset := only(t, top, 8)
	if len(opset) != 1 {
		t.Fatalf("opset_import: %+v", opset)
	}
	os := fields(t, opset[0].bytes)
	if d := only(t, os, 1); len(d) != 1 || len(d[0].bytes) != 0 {
		t.Errorf("opset domain %+v", d)
	}
	if v := only(t, os, 2); len(v) != 1 || v[0].v != Opset {
		t.Errorf("opset version %+v", v)
	}
	if p := only(t, top, 2); len(p) != 1 || string(p[0].bytes) != "mopeclip" {
		t.Errorf("producer_name %+v", p)
	}
	if md := only(t, top, 14); len(md) != 1 {
		t.Errorf("metadata_props %+v", md)
	}
	graphs := only(t, top, 7)
	if len(graphs) != 1 {
		t.Fatalf("graph: %d", len(graphs))
	}
	g := fields(t, graphs[0].bytes)
	nodes := only(t, g, 1)
	if len(nodes) != 2 {
		t.Fatalf("%d nodes", len(nodes))
	}
	n0 := fields(t, nodes[0].bytes)
	if in := only(t, n0, 1); len(in) != 2 || string(in[0].bytes) != "x" || string(in[1].bytes) != "w" {
		t.Errorf("node inputs %+v", in)
	}
	if op := only(t, n0, 4); string(op[0].bytes) != "Gemm" {
		t.Errorf("op_type %q", op[0].bytes)
	}
	attr := fields(t, only(t, n0, 5)[0].bytes)
	if string(only(t, attr, 1)[0].bytes) != "transB" || only(t, attr, 3)[0].v != 1 || only(t, attr, 20)[0].v != attrInt {
		t.Errorf("Gemm attribute %+v", attr)
	}
	for _, a := range only(t, fields(t, nodes[1].bytes), 5) {
		af := fields(t, a.bytes)
		switch string(only(t, af, 1)[0].bytes) {
		case "epsilon":
			if f := only(t, af, 2); f[0].typ != protowire.Fixed32Type || math.Float32frombits(uint32(f[0].v)) != 1e-5 || only(t, af, 20)[0].v != attrFloat {
				t.Errorf("float attribute %+v", af)
			}
		case "perm":
			ints := only(t, af, 8)
			if len(ints) != 2 || int64(ints[0].v) != -1 || ints[1].v != 2 || only(t, af, 20)[0].v != attrInts {
				t.Errorf("ints attribute %+v", af)
			}
		}
	}
	inits := only(t, g, 5)
	if len(inits) != 1 {
		t.Fatalf("%d initializers", len(inits))
	}
	tf := fields(t, inits[0].bytes)
	dims := only(t, tf, 1)
	if len(dims) != 2 || dims[0].v != 2 || dims[1].v != 3 || only(t, tf, 2)[0].v != uint64(Float) || string(only(t, tf, 8)[0].bytes) != "w" {
		t.Errorf("initializer header %+v", tf)
	}
	raw := only(t, tf, 9)[0].bytes
	if len(raw) != 24 || math.Float32frombits(binary.LittleEndian.Uint32(raw[4:])) != -2 {
		t.Errorf("raw_data % x", raw)
	}
	in := fields(t, only(t, g, 11)[0].bytes)
	if string(only(t, in, 1)[0].bytes) != "x" {
		t.Errorf("input name %+v", in)
	}
	tensorType := fields(t, only(t, fields(t, only(t, in, 2)[0].bytes), 1)[0].bytes)
	if only(t, tensorType, 1)[0].v != uint64(Float) {
		t.Errorf("elem_type %+v", tensorType)
	}
	dimsOf := only(t, fields(t, only(t, tensorType, 2)[0].bytes), 1)
	if len(dimsOf) != 2 || string(only(t, fields(t, dimsOf[0].bytes), 2)[0].bytes) != "batch" || only(t, fields(t, dimsOf[1].bytes), 1)[0].v != 3 {
		t.Errorf("shape %+v", dimsOf)
	}
	if out := only(t, g, 12); len(out) != 1 {
		t.Errorf("outputs %+v", out)
	}
}
