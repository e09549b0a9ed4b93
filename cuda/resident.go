//go:build cuda

package cuda

import (
	"fmt"
	"slices"
	"sort"
	"unsafe"
)

// The resident mode of Backend (BackendOptions.Resident): every host slice
// the backend sees gets a device copy, kept in a table of entries keyed by
// host address range. An entry covers a whole host range (a slice extended
// to its capacity, so that the rows of a tensor and the tensor itself share
// one entry) and records which copy is current:
//
//	hostValid && devValid   both copies agree
//	!devValid               the host is newer (new entry, or after Wrote)
//	!hostValid              the device is newer (after a kernel wrote it)
//
// Inputs are uploaded only when the device copy is stale; outputs are
// written on the device and the host copy marked stale until Sync. An entry
// holds a reference to its host range, so the Go allocation cannot be freed
// and its address reused while the entry exists. Entries named by Keep
// (parameters, gradients, optimiser state) persist; EndStep frees the
// others' device blocks into the Context's size-class cache and forgets
// them.

// resEntry is the device copy of one host range.
type resEntry struct {
	start     uintptr   // address of host[0]
	host      []float32 // the host range (keeps the allocation alive)
	dev       devPtr
	hostValid bool
	devValid  bool
	kept      bool
}

func (e *resEntry) end() uintptr { return e.start + 4*uintptr(len(e.host)) }

// intsEntry is a cached device copy of an int32 table (attention masks,
// gather indices), reused while its contents recur.
type intsEntry struct {
	dev  devPtr
	used bool // used since the last EndStep
}

// residency is the state of the resident mode (guarded by Backend.mu).
type residency struct {
	entries []*resEntry // sorted by start, non-overlapping
	ints    map[string]*intsEntry
}

func addr(x []float32) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(x))) }

// find returns the index of the first entry that ends after a.
func (r *residency) find(a uintptr) int {
	return sort.Search(len(r.entries), func(i int) bool { return r.entries[i].end() > a })
}

// overlapping returns the entries that overlap [lo, hi).
func (r *residency) overlapping(lo, hi uintptr) []*resEntry {
	i := r.find(lo)
	j := i
	for j < len(r.entries) && r.entries[j].start < hi {
		j++
	}
	return r.entries[i:j]
}

// upload copies e's host range to its device block.
func (b *Backend) upload(e *resEntry) error {
	if err := shimHtoD(e.dev, e.host); err != nil {
		return err
	}
	b.countUp(4*len(e.host), e.kept)
	e.devValid = true
	return nil
}

// download copies e's device block (the part [lo, hi) of its elements) to the
// host.
func (b *Backend) download(e *resEntry, lo, hi int) error {
	if lo >= hi {
		return nil
	}
	if err := shimDtoH(e.host[lo:hi], e.dev+devPtr(4*lo)); err != nil {
		return err
	}
	b.countDown(4*(hi-lo), e.kept)
	return nil
}

func (b *Backend) countUp(bytes int, kept bool) {
	b.xfer.Uploads++
	b.xfer.UploadBytes += int64(bytes)
	if kept {
		b.xfer.KeptUploadBytes += int64(bytes)
	}
}

func (b *Backend) countDown(bytes int, kept bool) {
	b.xfer.Downloads++
	b.xfer.DownloadBytes += int64(bytes)
	if kept {
		b.xfer.KeptDownloadBytes += int64(bytes)
	}
}

// entry returns the entry holding x and x's offset in it (elements),
// creating it (host-valid) when x is not inside one. Entries x only partly
// overlaps are merged into the new one (their device-only contents are
// downloaded first).
func (b *Backend) entry(x []float32) (*resEntry, int, error) {
	r := b.res
	lo := addr(x)
	hi := lo + 4*uintptr(len(x))
	if i := r.find(lo); i < len(r.entries) {
		if e := r.entries[i]; e.start <= lo && hi <= e.end() {
			return e, int(lo-e.start) / 4, nil
		}
	}
	// A new entry over x's capacity, grown to cover what it overlaps.
	full := x[:cap(x)]
	base := full
	hi = lo + 4*uintptr(len(full))
	old := r.overlapping(lo, hi)
	kept := false
	for _, e := range old {
		if e.start < lo {
			lo, base = e.start, e.host
		}
		hi = max(hi, e.end())
		kept = kept || e.kept
	}
	for _, e := range old {
		if !e.hostValid {
			if err := b.download(e, 0, len(e.host)); err != nil {
				return nil, 0, err
			}
		}
	}
	// base starts at lo; the range up to hi lies in the same Go
	// allocation (overlapping ranges cannot belong to different ones).
	host := unsafe.Slice(unsafe.SliceData(base), int(hi-lo)/4)
	dev, err := b.c.alloc(4 * max(len(host), 1))
	if err != nil {
		return nil, 0, err
	}
	ne := &resEntry{start: lo, host: host, dev: dev, hostValid: true, kept: kept}
	i := r.find(lo)
	j := i + len(old)
	for _, e := range old {
		b.c.free(e.dev)
	}
	// Replace entries [i, j) by ne.
	r.entries = append(r.entries[:i], append([]*resEntry{ne}, r.entries[j:]...)...)
	return ne, int(addr(x)-lo) / 4, nil
}

// resIn returns the device address of x, uploading its entry when the host
// copy is newer.
func (f *frame) resIn(x []float32) devPtr {
	e, off, err := f.b.entry(x)
	if err != nil {
		f.fail(err)
		return 0
	}
	if !e.devValid {
		f.fail(f.b.upload(e))
	}
	f.inputs = append(f.inputs, e)
	return e.dev + devPtr(4*off)
}

// resOut returns the device address of the output x. Its entry is uploaded
// first when its device copy is stale and the kernel does not overwrite the
// whole entry (load, or x is part of it); the entry becomes device-newer
// when the call ends.
func (f *frame) resOut(x []float32, load bool) devPtr {
	e, off, err := f.b.entry(x)
	if err != nil {
		f.fail(err)
		return 0
	}
	whole := off == 0 && len(x) == len(e.host)
	if !e.devValid && (load || !whole) {
		f.fail(f.b.upload(e))
	}
	p := e.dev + devPtr(4*off)
	if !load && f.b.opt.PoisonOutputs && f.err == nil && !slices.Contains(f.inputs, e) {
		f.fail(f.b.c.poison(p, len(x)))
	}
	f.written = append(f.written, e)
	return p
}

// resInts returns a device copy of v from the cache (uploaded when new).
func (f *frame) resInts(v []int32) devPtr {
	r := f.b.res
	key := unsafe.String((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	if e, ok := r.ints[key]; ok {
		e.used = true
		return e.dev
	}
	p, err := f.b.c.uploadInts(v)
	if err != nil {
		f.fail(err)
		return 0
	}
	f.b.countUp(4*len(v), false)
	r.ints[string([]byte(key))] = &intsEntry{dev: p, used: true}
	return p
}

// endResident marks the outputs of a call device-newer.
func (f *frame) endResident() {
	for _, e := range f.written {
		e.devValid, e.hostValid = true, false
	}
}

// Sync makes the host copies of xs current: entries overlapping them whose
// device copy is newer are downloaded (whole). Slices the backend has not
// seen are current already. In the per-call mode it does nothing.
func (b *Backend) Sync(xs ...[]float32) {
	if b.res == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range xs {
		if len(x) == 0 {
			continue
		}
		lo := addr(x)
		for _, e := range b.res.overlapping(lo, lo+4*uintptr(len(x))) {
			if !e.hostValid {
				if err := b.download(e, 0, len(e.host)); err != nil {
					panic(fmt.Errorf("cuda backend Sync: %w", err))
				}
				e.hostValid = true
			}
		}
	}
}

// Wrote declares that the host changed xs: their device copies are stale.
// When an entry's device copy was newer, the parts of it outside xs are
// downloaded first, so that a host write to part of a buffer keeps the
// rest. In the per-call mode it does nothing.
func (b *Backend) Wrote(xs ...[]float32) {
	if b.res == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range xs {
		if len(x) == 0 {
			continue
		}
		lo := addr(x)
		hi := lo + 4*uintptr(len(x))
		for _, e := range b.res.overlapping(lo, hi) {
			if !e.hostValid {
				a := int(max(lo, e.start)-e.start) / 4
				z := int(min(hi, e.end())-e.start) / 4
				err := b.download(e, 0, a)
				if err == nil {
					err = b.download(e, z, len(e.host))
				}
				if err != nil {
					panic(fmt.Errorf("cuda backend Wrote: %w", err))
				}
			}
			e.hostValid, e.devValid = true, false
		}
	}
}

// Keep makes the device copies of xs persist across EndStep (parameters,
// gradients, optimiser state). It copies nothing: a new entry is uploaded on
// first use. In the per-call mode it does nothing.
func (b *Backend) Keep(xs ...[]float32) {
	if b.res == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range xs {
		if len(x) == 0 {
			continue
		}
		e, _, err := b.entry(x)
		if err != nil {
			panic(fmt.Errorf("cuda backend Keep: %w", err))
		}
		e.kept = true
	}
}

// EndStep forgets every entry not named by Keep, returning its device block
// to the Context's cache (host copies are not updated: Sync what is still
// needed first), and drops cached int32 tables the step did not use. In the
// per-call mode it does nothing.
func (b *Backend) EndStep() {
	if b.res == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.res
	kept := r.entries[:0]
	for _, e := range r.entries {
		if e.kept {
			kept = append(kept, e)
			continue
		}
		b.c.free(e.dev)
	}
	clear(r.entries[len(kept):])
	r.entries = kept
	for k, e := range r.ints {
		if !e.used {
			b.c.free(e.dev)
			delete(r.ints, k)
		} else {
			e.used = false
		}
	}
}

// closeResident frees every device copy (Close).
func (b *Backend) closeResident() {
	if b.res == nil {
		return
	}
	for _, e := range b.res.entries {
		b.c.free(e.dev)
	}
	for _, e := range b.res.ints {
		b.c.free(e.dev)
	}
	b.res.entries, b.res.ints = nil, map[string]*intsEntry{}
}

// Transfers returns the host↔device copy counters since NewBackend.
func (b *Backend) Transfers() Transfers {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.xfer
}

// ResidentStats describes the device copies of the resident mode (zero
// counts in the per-call mode) and the Context's device memory.
func (b *Backend) ResidentStats() ResidentStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s ResidentStats
	if b.res != nil {
		for _, e := range b.res.entries {
			if e.kept {
				s.Kept++
				s.KeptBytes += 4 * int64(len(e.host))
			} else {
				s.Transient++
				s.TransientBytes += 4 * int64(len(e.host))
			}
		}
	}
	s.DeviceBytes = b.c.deviceBytes()
	return s
}
