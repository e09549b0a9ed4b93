package tensor

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel regions (the thread grid of a GEMM, an engine's attention heads)
// run on one process-wide set of worker goroutines that spin for a short
// while after each region before they park. A region of one image or one
// prompt lasts a few hundred microseconds, and the gaps between regions (a
// layer norm, a residual add) a few microseconds: a worker that parked in
// such a gap, or a fresh goroutine per region, has to be woken through the
// OS (and, in a virtual machine, through the hypervisor), which costs tens
// of microseconds each time and kept one-image latency on two threads at
// 1.3–1.5× one thread's. Spinning costs CPU time only in the gaps, and a
// spinning worker yields its thread to any other runnable goroutine.
//
// Which worker runs which index never changes a result: callers give every
// index its own fixed piece of work (the GEMM's tiles are fixed by its
// plan, not by the workers).

// EnvSpin is the environment variable that sets how long an idle worker
// spins for the next region before it parks: a Go duration ("0" parks at
// once, for machines shared with other busy processes; default 200µs).
const EnvSpin = "MOPECLIP_SPIN"

// defaultSpin is the spin time without $MOPECLIP_SPIN.
const defaultSpin = 200 * time.Microsecond

// spinFor is how long (in nanoseconds) a worker spins for the next region
// before parking; spinErr says why $MOPECLIP_SPIN was not used.
var (
	spinFor atomic.Int64
	spinErr error
)

func init() {
	d, err := parseSpin(os.Getenv(EnvSpin))
	spinFor.Store(int64(d))
	spinErr = err
}

// parseSpin parses a $MOPECLIP_SPIN value ("" is the default).
func parseSpin(v string) (time.Duration, error) {
	if v == "" {
		return defaultSpin, nil
	}
	d, err := time.ParseDuration(v) // "0" needs no unit
	if err != nil || d < 0 || d > time.Second {
		return defaultSpin, fmt.Errorf("$%s=%q: want a duration from 0 to 1s (like 200us or 0)", EnvSpin, v)
	}
	return d, nil
}

// SpinWait returns how long idle workers spin before they park, and the
// error that made Parallel ignore $MOPECLIP_SPIN (then the default is used).
func SpinWait() (time.Duration, error) { return time.Duration(spinFor.Load()), spinErr }

// regionPool is the process-wide worker set. mu is held by the goroutine
// running a region; a Parallel call that finds it held (a nested call from
// inside a region, or a concurrent caller) runs its indices itself.
type regionPool struct {
	mu sync.Mutex
	// gen is the region's number << 16 | the workers taking part in it,
	// the caller included: one word, so that a worker that is not taking
	// part never reads fields a later region may be writing.
	gen     atomic.Uint64
	fn      func(w, i int)
	n       int          // indices in the region
	next    atomic.Int64 // next index to take
	done    atomic.Int64 // helpers (workers 1…W-1) finished with the region
	workers []*poolWorker
}

type poolWorker struct {
	parked atomic.Bool
	wake   chan struct{}
}

var regions regionPool

// Parallel calls fn(w, i) for every i in [0, n), on at most W workers
// (GOMAXPROCS when W ≤ 0); w in [0, W) names the worker, so fn may use
// per-worker scratch space. The caller is worker 0; Parallel returns when
// every call has returned. Indices are handed out in order, each to the
// first free worker. When the worker set is busy (Parallel called from
// inside fn, or from two goroutines at once) the caller runs all of its
// indices itself, as worker 0.
func Parallel(n, W int, fn func(w, i int)) {
	if W <= 0 {
		W = runtime.GOMAXPROCS(0)
	}
	W = min(W, n, runtime.GOMAXPROCS(0), 1<<16-1)
	if W <= 1 || !regions.mu.TryLock() {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	regions.run(n, W, fn)
	regions.mu.Unlock()
}

// run runs one region; p.mu is held.
func (p *regionPool) run(n, W int, fn func(w, i int)) {
	for len(p.workers) < W-1 {
		pw := &poolWorker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, pw)
		go p.loop(len(p.workers), pw, p.gen.Load())
	}
	p.fn, p.n = fn, n
	p.next.Store(0)
	p.done.Store(0)
	p.gen.Store((p.gen.Load()>>16+1)<<16 | uint64(W))
	for _, pw := range p.workers[:W-1] {
		if pw.parked.CompareAndSwap(true, false) {
			pw.wake <- struct{}{}
		}
	}
	p.work(0)
	for spins := 0; p.done.Load() != int64(W-1); spins++ {
		if spins%64 == 63 {
			runtime.Gosched()
		}
	}
	p.fn = nil
}

// work takes indices until none is left.
func (p *regionPool) work(w int) {
	for {
		i := int(p.next.Add(1) - 1)
		if i >= p.n {
			return
		}
		p.fn(w, i)
	}
}

// loop is helper w (1, 2, …): it waits for each region after seen (spinning,
// then parked) and takes part in those with more than w workers.
func (p *regionPool) loop(w int, pw *poolWorker, seen uint64) {
	for {
		seen = p.await(pw, seen)
		if w < int(seen&(1<<16-1)) {
			p.work(w)
			p.done.Add(1)
		}
	}
}

// await returns the gen word of the next region after seen.
func (p *regionPool) await(pw *poolWorker, seen uint64) uint64 {
	spin := time.Duration(spinFor.Load())
	deadline := time.Now().Add(spin)
	for spins := 0; spin > 0; spins++ {
		if g := p.gen.Load(); g != seen {
			return g
		}
		if spins%64 == 63 {
			if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	pw.parked.Store(true)
	if g := p.gen.Load(); g != seen {
		if pw.parked.CompareAndSwap(true, false) {
			return g
		}
		// The caller saw us parked and is sending the wake-up: take it.
	}
	<-pw.wake
	return p.gen.Load()
}
