// Command mopeworker is the mopeclip side of bench/peers/compare.py: it
// loads one or more checkpoints, builds the fast engine (package infer) for
// each, and then times single forward passes on request, so that a driver
// can interleave it round by round with ONNX Runtime (run_ort.js --serve)
// and with the reference forward, without reloading anything.
//
//	mopeworker --threads T MODEL_DIR [MODEL_DIR...]
//
// stdin, one request per line: "ENGINE MODEL TOWER BATCH", ENGINE fast (the
// engine with --split), gemm or items (the engine with that split, built on
// first use), bf16 or int8 (the engine with --split and that weight type,
// built on first use), or ref (the reference forward), MODEL the index of a model directory, TOWER image or text, BATCH
// the number of items (random inputs as mope bench makes them, texts of the
// full context). stdout: the seconds the pass took, one line per request.
// It prints "ready" once loaded.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/infer"
	"github.com/mopeclip/mopeclip/ops"
	"github.com/mopeclip/mopeclip/tensor"
)

type inputs struct {
	pixels *ops.Var
	tb     *clip.TextBatch
	img    []float32
	txt    []float32
}

func main() {
	threads := flag.Int("threads", 1, "GOMAXPROCS and engine threads")
	split := flag.String("split", "auto", "engine split: auto, gemm or items")
	chunk := flag.Int("chunk", 0, "engine chunk (0: default)")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)
	sp, err := infer.ParseSplit(*split)
	if err != nil {
		fatal(err)
	}
	var models []*clip.Model
	var engines []*infer.Engine
	bySplit := map[string]*infer.Engine{}
	engineFor := func(name string, mi int) *infer.Engine {
		if name == "fast" {
			return engines[mi]
		}
		key := fmt.Sprint(name, mi)
		if e := bySplit[key]; e != nil {
			return e
		}
		s, dt := sp, infer.F32
		if d, err := infer.ParseDType(name); err == nil {
			dt = d
		} else if s, err = infer.ParseSplit(name); err != nil {
			fatal(err)
		}
		e, err := infer.New(models[mi], infer.Options{Threads: *threads, Split: s, Chunk: *chunk, DType: dt})
		if err != nil {
			fatal(err)
		}
		bySplit[key] = e
		return e
	}
	for _, dir := range flag.Args() {
		m, err := clip.Load(dir)
		if err != nil {
			fatal(err)
		}
		e, err := infer.New(m, infer.Options{Threads: *threads, Split: sp, Chunk: *chunk})
		if err != nil {
			fatal(err)
		}
		models = append(models, m)
		engines = append(engines, e)
	}
	cache := map[[2]int]*inputs{}
	get := func(mi, B int) *inputs {
		if in := cache[[2]int{mi, B}]; in != nil {
			return in
		}
		cfg := models[mi].Config
		rng := tensor.NewRNG(1)
		S, T := cfg.Vision.ImageSize, cfg.Text.MaxPositionEmbeddings
		in := &inputs{pixels: ops.Const(tensor.New(B, 3, S, S).Normal(rng, 0, 1))}
		tb := &clip.TextBatch{IDs: make([]int, B*T), B: B, T: T}
		V, eos := cfg.Text.VocabSize, cfg.Text.EOSTokenID
		for b := 0; b < B; b++ {
			row := tb.IDs[b*T : (b+1)*T]
			for j := range row {
				row[j] = rng.IntN(max(1, min(V, eos)))
			}
			row[T-1] = eos
		}
		tb.EOTPos = clip.EOTPositions(tb.IDs, B, T, eos)
		in.tb = tb
		in.img = make([]float32, B*cfg.ProjectionDim)
		in.txt = make([]float32, B*cfg.ProjectionDim)
		engines[mi].Warm(B)
		cache[[2]int{mi, B}] = in
		return in
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var eng, tower string
		var mi, B int
		if _, err := fmt.Sscan(sc.Text(), &eng, &mi, &tower, &B); err != nil || mi < 0 || mi >= len(models) || B < 1 {
			fatal(fmt.Errorf("bad request %q", sc.Text()))
		}
		in := get(mi, B)
		m := models[mi]
		var f func()
		switch eng + " " + tower {
		case "fast image", "gemm image", "items image", "bf16 image", "int8 image":
			e := engineFor(eng, mi)
			e.Warm(B)
			f = func() { e.EncodeImages(in.pixels.Value.Data, B, in.img) }
		case "fast text", "gemm text", "items text", "bf16 text", "int8 text":
			e := engineFor(eng, mi)
			e.Warm(B)
			f = func() { e.EncodeTexts(in.tb.IDs, in.tb.EOTPos, B, in.tb.T, in.txt) }
		case "ref image":
			f = func() { m.EncodeImage(nil, in.pixels) }
		case "ref text":
			f = func() { m.EncodeText(nil, in.tb) }
		default:
			fatal(fmt.Errorf("bad request %q", sc.Text()))
		}
		t0 := time.Now()
		f()
		fmt.Println(time.Since(t0).Seconds())
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mopeworker:", err)
	os.Exit(1)
}
