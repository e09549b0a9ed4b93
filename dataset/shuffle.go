package dataset

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/mopeclip/mopeclip/dataset/shapes"
)

// Position is a place in the endless sequence of a Shuffler: Offset
// records of epoch Epoch have been read.
type Position struct {
	Epoch, Offset int
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Epoch, p.Offset) }

// ParsePosition parses what Position.String writes.
func ParsePosition(s string) (Position, error) {
	e, o, ok := strings.Cut(s, ":")
	var p Position
	var err1, err2 error
	p.Epoch, err1 = strconv.Atoi(e)
	p.Offset, err2 = strconv.Atoi(o)
	if !ok || err1 != nil || err2 != nil || p.Epoch < 0 || p.Offset < 0 {
		return Position{}, fmt.Errorf("dataset: bad data position %q (want EPOCH:OFFSET)", s)
	}
	return p, nil
}

// ShuffleOptions configure a Shuffler.
type ShuffleOptions struct {
	// Seed fixes every epoch's order.
	Seed uint64
	// Buffer is the shuffle buffer of streamed formats (tar shards), in
	// records (<= 0: 1000). Indexed formats are shuffled whole.
	Buffer int
}

// Shuffler reads a dataset as an endless sequence of epochs, each in an
// order that is a function of (Seed, epoch) only: datasets with an index
// (files, image folders, the shapes world) are permuted whole; tar shards
// are read in a permuted shard order through a shuffle buffer, as
// webdataset does. Seek returns to any position, so a training run resumed
// from a checkpoint reads exactly what a straight run would have read.
type Shuffler struct {
	d   *Dataset
	opt ShuffleOptions
	pos Position

	cancel context.CancelFunc
	ch     chan shuffled
}

type shuffled struct {
	rec Record
	err error
}

// NewShuffler starts at epoch 0.
func NewShuffler(d *Dataset, opt ShuffleOptions) *Shuffler {
	if opt.Buffer <= 0 {
		opt.Buffer = 1000
	}
	return &Shuffler{d: d, opt: opt}
}

// Position is how far the shuffler has read.
func (s *Shuffler) Position() Position { return s.pos }

// Close stops the reader behind the shuffler.
func (s *Shuffler) Close() {
	if s.cancel != nil {
		s.cancel()
		for range s.ch { // let the reader finish
		}
		s.cancel, s.ch = nil, nil
	}
}

// Seek moves to p: it rereads epoch p.Epoch from its start and skips
// p.Offset records (their images are not decoded).
func (s *Shuffler) Seek(ctx context.Context, p Position) error {
	s.Close()
	s.pos = Position{Epoch: p.Epoch}
	s.start(ctx)
	for s.pos.Offset < p.Offset {
		if _, err := s.Next(ctx); err != nil {
			return fmt.Errorf("dataset: seeking to %v: %w", p, err)
		}
		if s.pos.Epoch != p.Epoch {
			return fmt.Errorf("dataset: seeking to %v: epoch %d has only %d records", p, p.Epoch, p.Offset)
		}
	}
	return nil
}

// errEndOfEpoch ends an epoch's channel.
var errEndOfEpoch = errors.New("end of epoch")

func (s *Shuffler) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan shuffled, 8)
	s.cancel, s.ch = cancel, ch
	epoch := s.pos.Epoch
	go func() {
		defer close(ch)
		err := s.epoch(ctx, epoch, func(r Record) error {
			select {
			case ch <- shuffled{rec: r}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err == nil {
			err = errEndOfEpoch
		}
		select {
		case ch <- shuffled{err: err}:
		case <-ctx.Done():
		}
	}()
}

// Next returns the next record, going on to the next epoch at the end of
// one. An epoch without records is an error.
func (s *Shuffler) Next(ctx context.Context) (Record, error) {
	for {
		if s.ch == nil {
			s.start(ctx)
		}
		it, ok := <-s.ch
		if !ok {
			return Record{}, errors.New("dataset: shuffler closed")
		}
		if it.err == nil {
			s.pos.Offset++
			return it.rec, nil
		}
		if !errors.Is(it.err, errEndOfEpoch) {
			s.Close()
			return Record{}, it.err
		}
		if s.pos.Offset == 0 {
			s.Close()
			return Record{}, fmt.Errorf("dataset: %s: an epoch without records", s.d.Spec.Path)
		}
		s.Close()
		s.pos = Position{Epoch: s.pos.Epoch + 1}
	}
}

// rng returns the generator of one epoch's decisions.
func (s *Shuffler) rng(epoch int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.opt.Seed^0x5eed_da7a, uint64(epoch)<<8|stream))
}

// epoch reads the records of one epoch in its shuffled order.
func (s *Shuffler) epoch(ctx context.Context, epoch int, fn func(Record) error) error {
	d := s.d
	switch {
	case d.Spec.Format == Shapes:
		cfg := shapes.DefaultConfig()
		if d.opt.Shapes != nil {
			cfg = *d.opt.Shapes
		}
		for _, i := range s.rng(epoch, 0).Perm(d.n) {
			exs, err := shapes.GenerateRange(cfg, d.shapesSplit(), i, 1)
			if err != nil {
				return err
			}
			e := exs[0]
			if err := fn(Record{Index: e.Index, Where: e.ID, Image: e.Image, Captions: e.Captions, Label: -1}); err != nil {
				return err
			}
		}
		return nil
	case d.Spec.Format == WebDataset:
		shards := append([]string(nil), d.Spec.Shards...)
		r := s.rng(epoch, 0)
		r.Shuffle(len(shards), func(i, j int) { shards[i], shards[j] = shards[j], shards[i] })
		return s.buffered(ctx, s.rng(epoch, 1), shards, fn)
	}
	for _, i := range s.rng(epoch, 0).Perm(len(d.index)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(d.index[i]); err != nil {
			return err
		}
	}
	return nil
}

// buffered streams the shards through a shuffle buffer: once it is full,
// each new record replaces a random one, which is emitted; at the end the
// rest comes out in random order.
func (s *Shuffler) buffered(ctx context.Context, r *rand.Rand, shards []string, fn func(Record) error) error {
	buf := make([]Record, 0, s.opt.Buffer)
	idx := 0
	for _, shard := range shards {
		err := s.d.eachInShard(ctx, shard, &idx, func(rec Record) error {
			if len(buf) < cap(buf) {
				buf = append(buf, rec)
				return nil
			}
			k := r.IntN(len(buf))
			out := buf[k]
			buf[k] = rec
			return fn(out)
		})
		if errors.Is(err, errStop) {
			break
		}
		if err != nil {
			return err
		}
	}
	r.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
	for _, rec := range buf {
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// CaptionChoice picks one of a record's captions for training, as a
// function of (seed, epoch, the record's identity) only.
func CaptionChoice(seed uint64, epoch int, r *Record) int {
	if len(r.Captions) <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(r.Where))
	x := rand.New(rand.NewPCG(seed^h.Sum64(), uint64(epoch))).Uint64()
	return int(x % uint64(len(r.Captions)))
}
