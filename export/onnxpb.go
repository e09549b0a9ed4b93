package export

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// A hand-written encoder for the part of ONNX's protobuf schema
// (onnx/onnx.proto, proto2) that the exporter writes: ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto and the type and
// shape messages. It appends the wire format with
// google.golang.org/protobuf/encoding/protowire; the field numbers below are
// those of onnx.proto, which are stable across ONNX releases.

// ONNX field numbers (onnx.proto).
const (
	// ModelProto
	fModelIRVersion     protowire.Number = 1
	fModelProducerName  protowire.Number = 2
	fModelProducerVer   protowire.Number = 3
	fModelDocString     protowire.Number = 6
	fModelGraph         protowire.Number = 7
	fModelOpsetImport   protowire.Number = 8
	fModelMetadataProps protowire.Number = 14
	// OperatorSetIdProto
	fOpsetDomain  protowire.Number = 1
	fOpsetVersion protowire.Number = 2
	// StringStringEntryProto
	fEntryKey   protowire.Number = 1
	fEntryValue protowire.Number = 2
	// GraphProto
	fGraphNode        protowire.Number = 1
	fGraphName        protowire.Number = 2
	fGraphInitializer protowire.Number = 5
	fGraphInput       protowire.Number = 11
	fGraphOutput      protowire.Number = 12
	// NodeProto
	fNodeInput     protowire.Number = 1
	fNodeOutput    protowire.Number = 2
	fNodeName      protowire.Number = 3
	fNodeOpType    protowire.Number = 4
	fNodeAttribute protowire.Number = 5
	// AttributeProto
	fAttrName  protowire.Number = 1
	fAttrF     protowire.Number = 2
	fAttrI     protowire.Number = 3
	fAttrT     protowire.Number = 5
	fAttrInts  protowire.Number = 8
	fAttrType  protowire.Number = 20
	attrFloat                   = 1 // AttributeProto.AttributeType
	attrInt                     = 2
	attrTensor                  = 4
	attrInts                    = 7
	// TensorProto
	fTensorDims     protowire.Number = 1
	fTensorDataType protowire.Number = 2
	fTensorName     protowire.Number = 8
	fTensorRawData  protowire.Number = 9
	// ValueInfoProto
	fValueName protowire.Number = 1
	fValueType protowire.Number = 2
	// TypeProto and TypeProto.Tensor
	fTypeTensor   protowire.Number = 1
	fTypeElemType protowire.Number = 1
	fTypeShape    protowire.Number = 2
	fShapeDim     protowire.Number = 1 // TensorShapeProto
	fDimValue     protowire.Number = 1 // TensorShapeProto.Dimension
	fDimParam     protowire.Number = 2
)

// DType is an ONNX TensorProto.DataType.
type DType int32

// The element types the exporter uses.
const (
	Float DType = 1 // FLOAT
	Int64 DType = 7 // INT64
	Bool  DType = 9 // BOOL
)

// Tensor is an initializer or a constant attribute value: a name, a shape
// and its little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Dims  []int
	Raw   []byte
}

// FloatTensor returns a float32 tensor holding data (copied) with dims.
func FloatTensor(name string, data []float32, dims ...int) *Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &Tensor{Name: name, DType: Float, Dims: dims, Raw: raw}
}

// Int64Tensor returns an int64 tensor holding data with dims.
func Int64Tensor(name string, data []int64, dims ...int) *Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, DType: Int64, Dims: dims, Raw: raw}
}

// Attr is a node attribute: exactly one of F, I, Ints, T is meaningful,
// chosen by Kind.
type Attr struct {
	Name string
	Kind int // attrFloat, attrInt, attrInts, attrTensor
	F    float32
	I    int64
	Ints []int64
	T    *Tensor
}

// AttrF, AttrI, AttrInts return attributes of one kind.
func AttrF(name string, f float32) Attr { return Attr{Name: name, Kind: attrFloat, F: f} }

// AttrI returns an integer attribute.
func AttrI(name string, i int64) Attr { return Attr{Name: name, Kind: attrInt, I: i} }

// AttrInts returns an integer-list attribute.
func AttrInts(name string, ints ...int64) Attr { return Attr{Name: name, Kind: attrInts, Ints: ints} }

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Dim is one dimension of a graph input or output: a fixed size, or a
// symbolic name (Param) for a dynamic axis.
type Dim struct {
	Value int
	Param string
}

// ValueInfo names a graph input or output with its element type and shape.
type ValueInfo struct {
	Name  string
	DType DType
	Shape []Dim
}

// Graph is an ONNX graph: nodes in topological order, initializers, inputs
// and outputs.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// maxProtoBytes is the most a protobuf message may hold (2 GiB - 1), less
// room for the graph's nodes.
const maxProtoBytes = 1<<31 - 1 - 64<<20

// weightBytes returns the bytes of the graph's initializers.
func (g *Graph) weightBytes() int64 {
	var n int64
	for _, t := range g.Initializers {
		n += int64(len(t.Raw))
	}
	return n
}

// ModelProto is a whole .onnx file.
type ModelProto struct {
	IRVersion       int64
	Opset           int64
	ProducerName    string
	ProducerVersion string
	DocString       string
	Metadata        [][2]string
	Graph           *Graph
}

func appendString(b []byte, n protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendMessage appends field n holding the message that enc appends.
func appendMessage(b []byte, n protowire.Number, enc func([]byte) []byte) []byte {
	return appendBytes(b, n, enc(nil))
}

func appendBytes(b []byte, n protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (t *Tensor) marshal(b []byte) []byte {
	for _, d := range t.Dims {
		b = appendVarint(b, fTensorDims, uint64(int64(d)))
	}
	b = appendVarint(b, fTensorDataType, uint64(t.DType))
	if t.Name != "" {
		b = appendString(b, fTensorName, t.Name)
	}
	return appendBytes(b, fTensorRawData, t.Raw)
}

func (a *Attr) marshal(b []byte) []byte {
	b = appendString(b, fAttrName, a.Name)
	switch a.Kind {
	case attrFloat:
		b = protowire.AppendTag(b, fAttrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case attrInt:
		b = appendVarint(b, fAttrI, uint64(a.I))
	case attrInts:
		for _, v := range a.Ints { // proto2 repeated int64: unpacked
			b = appendVarint(b, fAttrInts, uint64(v))
		}
	case attrTensor:
		b = appendMessage(b, fAttrT, a.T.marshal)
	}
	return appendVarint(b, fAttrType, uint64(a.Kind))
}

func (n *Node) marshal(b []byte) []byte {
	for _, in := range n.Inputs {
		b = appendString(b, fNodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, fNodeOutput, out)
	}
	if n.Name != "" {
		b = appendString(b, fNodeName, n.Name)
	}
	b = appendString(b, fNodeOpType, n.OpType)
	for i := range n.Attrs {
		b = appendMessage(b, fNodeAttribute, n.Attrs[i].marshal)
	}
	return b
}

func (v *ValueInfo) marshal(b []byte) []byte {
	b = appendString(b, fValueName, v.Name)
	shape := func(b []byte) []byte {
		for _, d := range v.Shape {
			b = appendMessage(b, fShapeDim, func(b []byte) []byte {
				if d.Param != "" {
					return appendString(b, fDimParam, d.Param)
				}
				return appendVarint(b, fDimValue, uint64(int64(d.Value)))
			})
		}
		return b
	}
	tensorType := func(b []byte) []byte {
		b = appendVarint(b, fTypeElemType, uint64(v.DType))
		return appendMessage(b, fTypeShape, shape)
	}
	return appendMessage(b, fValueType, func(b []byte) []byte {
		return appendMessage(b, fTypeTensor, tensorType)
	})
}

func (g *Graph) marshal(b []byte) []byte {
	for _, n := range g.Nodes {
		b = appendMessage(b, fGraphNode, n.marshal)
	}
	b = appendString(b, fGraphName, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, fGraphInitializer, t.marshal)
	}
	for i := range g.Inputs {
		b = appendMessage(b, fGraphInput, g.Inputs[i].marshal)
	}
	for i := range g.Outputs {
		b = appendMessage(b, fGraphOutput, g.Outputs[i].marshal)
	}
	return b
}

// Marshal returns the protobuf encoding of the model (an .onnx file).
func (m *ModelProto) Marshal() []byte {
	var buf bytes.Buffer
	m.WriteTo(&buf)
	return buf.Bytes()
}

// WriteTo writes the protobuf encoding of the model to w, the graph (which
// holds the weights) encoded once and written without another copy.
func (m *ModelProto) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, part := range m.parts() {
		k, err := w.Write(part)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// parts returns the encoding in pieces: the fields before the graph, the
// graph's tag and length, the graph, the fields after it.
func (m *ModelProto) parts() [][]byte {
	b := appendVarint(nil, fModelIRVersion, uint64(m.IRVersion))
	if m.ProducerName != "" {
		b = appendString(b, fModelProducerName, m.ProducerName)
	}
	if m.ProducerVersion != "" {
		b = appendString(b, fModelProducerVer, m.ProducerVersion)
	}
	if m.DocString != "" {
		b = appendString(b, fModelDocString, m.DocString)
	}
	g := m.Graph.marshal(nil)
	b = protowire.AppendTag(b, fModelGraph, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(g)))
	var tail []byte
	tail = appendMessage(tail, fModelOpsetImport, func(b []byte) []byte {
		b = appendString(b, fOpsetDomain, "")
		return appendVarint(b, fOpsetVersion, uint64(m.Opset))
	})
	for _, kv := range m.Metadata {
		tail = appendMessage(tail, fModelMetadataProps, func(b []byte) []byte {
			b = appendString(b, fEntryKey, kv[0])
			return appendString(b, fEntryValue, kv[1])
		})
	}
	return [][]byte{b, g, tail}
}
