package tensor

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Kernel variant names, in order of preference (best last).
const (
	Generic = "generic"
	NEON    = "neon"
	AVX2    = "avx2"
	AVX512  = "avx512"
)

// variantRank orders variants: a higher rank is preferred when the CPU has it.
var variantRank = map[string]int{Generic: 0, NEON: 1, AVX2: 2, AVX512: 3}

// EnvKernels is the environment variable that forces one kernel variant.
const EnvKernels = "MOPECLIP_KERNELS"

// Variant is one implementation of an op.
type Variant[F any] struct {
	Name string
	Fn   F
}

// Registry holds the variants of one op and the one in use. Variants are
// registered from init functions (generic first, then whatever the CPU
// supports); the active one is the best registered variant, or the one named by
// MOPECLIP_KERNELS when that is registered.
type Registry[F any] struct {
	Op       string
	variants []Variant[F]
	active   int
}

var (
	registriesMu sync.Mutex
	registries   []interface{ describe() string }
)

// NewRegistry makes the registry of one op. It is called once per op, from a
// package-level variable declaration.
func NewRegistry[F any](op string) *Registry[F] {
	r := &Registry[F]{Op: op, active: -1}
	registriesMu.Lock()
	registries = append(registries, r)
	registriesMu.Unlock()
	return r
}

// Register adds a variant. It must only be called from init functions.
func (r *Registry[F]) Register(name string, fn F) {
	if _, ok := variantRank[name]; !ok {
		panic(fmt.Sprintf("tensor: unknown kernel variant %q for %s", name, r.Op))
	}
	for _, v := range r.variants {
		if v.Name == name {
			panic(fmt.Sprintf("tensor: kernel variant %q registered twice for %s", name, r.Op))
		}
	}
	r.variants = append(r.variants, Variant[F]{name, fn})
	sort.SliceStable(r.variants, func(i, j int) bool {
		return variantRank[r.variants[i].Name] < variantRank[r.variants[j].Name]
	})
	r.active = r.pick(os.Getenv(EnvKernels))
}

// pick returns the index of the forced variant if registered, else the best.
func (r *Registry[F]) pick(forced string) int {
	if forced != "" {
		for i, v := range r.variants {
			if v.Name == forced {
				return i
			}
		}
		// A forced variant this op or CPU lacks falls back to the best
		// one below it (e.g. avx512 forced on an AVX2-only CPU runs avx2).
		rank, ok := variantRank[forced]
		if ok {
			best := -1
			for i, v := range r.variants {
				if variantRank[v.Name] <= rank {
					best = i
				}
			}
			if best >= 0 {
				return best
			}
		}
	}
	return len(r.variants) - 1
}

// Fn returns the active implementation.
func (r *Registry[F]) Fn() F {
	if r.active < 0 {
		panic("tensor: no kernel registered for " + r.Op)
	}
	return r.variants[r.active].Fn
}

// Name returns the name of the active variant.
func (r *Registry[F]) Name() string {
	if r.active < 0 {
		return "none"
	}
	return r.variants[r.active].Name
}

// Variants returns every registered variant (the ones this CPU can run),
// worst first. Tests run once per variant.
func (r *Registry[F]) Variants() []Variant[F] {
	return append([]Variant[F](nil), r.variants...)
}

// Use makes the named variant active and returns a function that restores the
// previous one. It is meant for tests and benchmarks, which must not run in
// parallel with other users of the op. It returns false when the variant is
// not registered.
func (r *Registry[F]) Use(name string) (restore func(), ok bool) {
	prev := r.active
	for i, v := range r.variants {
		if v.Name == name {
			r.active = i
			return func() { r.active = prev }, true
		}
	}
	return func() {}, false
}

func (r *Registry[F]) describe() string {
	names := make([]string, len(r.variants))
	for i, v := range r.variants {
		names[i] = v.Name
	}
	note := ""
	if r.active >= 0 {
		if n, ok := any(r.variants[r.active].Fn).(interface{ kernelNote() string }); ok && n.kernelNote() != "" {
			note = n.kernelNote() + "; "
		}
	}
	return fmt.Sprintf("%s=%s (%shave %s)", r.Op, r.Name(), note, strings.Join(names, ","))
}

// KernelReport describes the active variant of every op, for benchmark
// reports and `mope bench`.
func KernelReport() string {
	registriesMu.Lock()
	defer registriesMu.Unlock()
	parts := make([]string, len(registries))
	for i, r := range registries {
		parts[i] = r.describe()
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
