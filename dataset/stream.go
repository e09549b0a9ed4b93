package dataset

import (
	"context"
	"runtime"
	"sync"

	"github.com/mopeclip/mopeclip/clip/imageproc"
)

// StreamOptions size the decoding pool of Stream.
type StreamOptions struct {
	// Workers decode and prepare records in parallel (<= 0: GOMAXPROCS).
	Workers int
	// Ahead bounds the records decoded ahead of the consumer (<= 0: 4 per
	// worker); memory is about 2×Ahead prepared records.
	Ahead int
}

func (o StreamOptions) sizes() (workers, ahead int) {
	workers = o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ahead = o.Ahead
	if ahead <= 0 {
		ahead = 4 * workers
	}
	return workers, ahead
}

type job[T any] struct {
	rec  Record
	out  T
	err  error
	done chan struct{}
}

// Stream reads d's records, runs prep on each on a pool of workers (image
// decoding and preprocessing) at most a bounded number ahead, and calls fn
// with each record and its prepared value in record order, so the result
// does not depend on the scheduling. A prep error names the record; with
// Options.SkipBad it is counted (Dataset.Skipped) and the record left out.
// Stream returns the first error of the reader, prep or fn.
func Stream[T any](ctx context.Context, d *Dataset, so StreamOptions, prep func(*Record) (T, error), fn func(Record, T) error) error {
	workers, ahead := so.sizes()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *job[T], ahead)
	order := make(chan *job[T], ahead)
	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		readErr = d.Each(ctx, func(r Record) error {
			j := &job[T]{rec: r, done: make(chan struct{})}
			select { // a job goes to the workers first: every job in order gets done
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case order <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				j.out, j.err = prep(&j.rec)
				close(j.done)
			}
		})
	}
	var err error
	for j := range order {
		<-j.done
		if err != nil {
			continue // draining after a failure
		}
		if j.err != nil {
			if err = d.Bad(j.err); err != nil {
				cancel()
			}
			continue
		}
		if err = fn(j.rec, j.out); err != nil {
			cancel()
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// Prepared decodes a record's image and resizes (and crops) it as cfg says:
// the 8-bit image that normalisation turns into the model's input.
func Prepared(r *Record, cfg imageproc.Config) (*imageproc.RGB8, error) {
	img, err := r.Decode()
	if err != nil {
		return nil, err
	}
	return imageproc.Prepare(img, cfg), nil
}

// Preprocessed is Prepared followed by normalisation: the [3,S,S] input.
func Preprocessed(r *Record, cfg imageproc.Config) ([]float32, error) {
	p, err := Prepared(r, cfg)
	if err != nil {
		return nil, err
	}
	return imageproc.Normalize(p, cfg.Mean, cfg.Std), nil
}
