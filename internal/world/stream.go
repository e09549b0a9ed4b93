package world

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"

	"github.com/mopeclip/mopeclip/clip/imageproc"
	"github.com/mopeclip/mopeclip/clip/tokenizer"
	"github.com/mopeclip/mopeclip/dataset"
	"github.com/mopeclip/mopeclip/tensor"
)

// StreamSampler draws training batches from a dataset read as a stream
// (dataset.Shuffler: epochs in a seeded order, a shuffle buffer for tar
// shards), for data too large to hold: batch s is the next Batch records,
// decoded and cropped to Size on all cores, with one caption each chosen by
// (Seed, epoch, record). Steps must be asked for in order; the position in
// the stream is the sampler's State, stored in checkpoints, and Restore
// returns to it, so a resumed run reads what a straight run reads.
type StreamSampler struct {
	Data    *dataset.Dataset
	Tok     *tokenizer.Tokenizer
	Batch   int
	Seed    uint64
	Size    int               // image size of the model
	Pre     *imageproc.Config // the model's preprocessing (nil: CLIP's default at Size)
	Context int               // text context of the model (0: Context)
	Buffer  int               // shuffle buffer of tar shards (0: 1000)

	sh   *dataset.Shuffler
	next int // the step the stream is positioned for
}

// stateKey is the checkpoint entry holding the stream position.
const stateKey = "data.position"

func (s *StreamSampler) shuffler() *dataset.Shuffler {
	if s.sh == nil {
		s.sh = dataset.NewShuffler(s.Data, dataset.ShuffleOptions{Seed: s.Seed, Buffer: s.Buffer})
	}
	return s.sh
}

// State returns the stream position (after the last batch drawn).
func (s *StreamSampler) State() map[string]string {
	return map[string]string{stateKey: s.shuffler().Position().String(), "data.step": strconv.Itoa(s.next)}
}

// Restore moves the stream to a position State returned, for step step.
func (s *StreamSampler) Restore(ctx context.Context, state map[string]string, step int) error {
	p, err := dataset.ParsePosition(state[stateKey])
	if err != nil {
		return fmt.Errorf("world: checkpoint without a valid data position: %w", err)
	}
	if st, _ := strconv.Atoi(state["data.step"]); st != step {
		return fmt.Errorf("world: checkpoint's data position is for step %s, not %d", state["data.step"], step)
	}
	if err := s.shuffler().Seek(ctx, p); err != nil {
		return err
	}
	s.next = step
	return nil
}

// Close stops the stream's reader.
func (s *StreamSampler) Close() {
	if s.sh != nil {
		s.sh.Close()
	}
}

type streamItem struct {
	rec   dataset.Record
	epoch int
	img   *imageproc.RGB8
	err   error
}

// Get returns the batch of step, which must be the step after the last one.
func (s *StreamSampler) Get(ctx context.Context, step int) (*Batch, error) {
	if step != s.next {
		return nil, fmt.Errorf("world: a stream is read in order: step %d asked for at step %d", step, s.next)
	}
	sh := s.shuffler()
	pc := imageproc.DefaultConfig(s.Size)
	if s.Pre != nil {
		pc = *s.Pre
	}
	items := make([]streamItem, 0, s.Batch)
	for len(items) < s.Batch {
		need := s.Batch - len(items)
		fresh := make([]streamItem, need)
		for k := range fresh {
			r, err := sh.Next(ctx)
			if err != nil {
				return nil, err
			}
			fresh[k] = streamItem{rec: r, epoch: sh.Position().Epoch}
		}
		parallelDo(need, func(k int) { fresh[k].img, fresh[k].err = dataset.Prepared(&fresh[k].rec, pc) })
		for _, it := range fresh {
			if it.err != nil {
				if err := s.Data.Bad(it.err); err != nil {
					return nil, err
				}
				continue // skipped and counted; the next record takes its place
			}
			items = append(items, it)
		}
	}
	S := s.Size
	n := S * S
	pix := tensor.New(len(items), 3, S, S)
	texts := make([]string, len(items))
	idx := make([]int, len(items))
	for b, it := range items {
		normalizeCrop(pix.Data[b*3*n:(b+1)*3*n], it.img.Pix, n, pc)
		texts[b] = it.rec.Captions[dataset.CaptionChoice(s.Seed, it.epoch, &it.rec)]
		idx[b] = it.rec.Index
	}
	ctxLen := s.Context
	if ctxLen <= 0 {
		ctxLen = Context
	}
	tb, err := TextBatchContext(s.Tok, texts, ctxLen)
	if err != nil {
		return nil, err
	}
	s.next++
	return &Batch{Index: idx, Pixels: pix, Text: tb}, nil
}

func normalizeCrop(dst []float32, src []uint8, n int, pc imageproc.Config) {
	for c := range 3 {
		m, sd := pc.Mean[c], pc.Std[c]
		d := dst[c*n : (c+1)*n]
		for k := range d {
			d[k] = (float32(src[3*k+c])/255 - m) / sd
		}
	}
}

// parallelDo runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallelDo(n int, f func(k int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for g := range w {
		wg.Go(func() {
			for k := g; k < n; k += w {
				f(k)
			}
		})
	}
	wg.Wait()
}
