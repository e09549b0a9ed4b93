package safetensors

import (
	"encoding/binary"
	"unsafe"
)

// nativeLittleEndian reports whether the machine's byte order is the file's.
// On such machines F32 and I64 data move between the file and the typed
// slices with a plain byte copy through the views below; elsewhere they are
// converted element by element.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// The views reinterpret a typed slice's backing array as bytes. Viewing a
// wider type as bytes needs no alignment check (bytes have alignment 1); the
// opposite direction, which would need one, is never done: data are always
// copied out of file buffers into freshly allocated typed slices.

func float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*4)
}

func int64Bytes(s []int64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*8)
}
