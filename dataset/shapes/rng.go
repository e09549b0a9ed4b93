package shapes

import (
	"hash/fnv"
	"math/bits"
)

// rng is a small SplitMix64 generator. It is defined here, not taken from
// math/rand, so that the world stays bit-identical whatever the Go version.
type rng struct{ s uint64 }

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newRNG returns a generator whose stream depends only on the given keys.
func newRNG(keys ...uint64) *rng {
	s := uint64(0x6a09e667f3bcc909)
	for _, k := range keys {
		s = mix64(s ^ mix64(k+0x9e3779b97f4a7c15))
	}
	return &rng{s: s}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a value in [0, n); n must be positive.
func (r *rng) intn(n int) int {
	hi, _ := mulHi(r.next(), uint64(n))
	return int(hi)
}

func mulHi(a, b uint64) (uint64, uint64) { return bits.Mul64(a, b) }

// float returns a value in [0, 1) with 53 random bits.
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// rangeF returns a value in [lo, hi). The conversion forbids FMA fusion, so
// the result is the same on every platform.
func (r *rng) rangeF(lo, hi float64) float64 { return lo + float64((hi-lo)*r.float()) }

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// shuffle permutes n elements (Fisher–Yates).
func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

// splitKey turns a split name into a stream key.
func splitKey(split string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(split))
	return h.Sum64()
}
