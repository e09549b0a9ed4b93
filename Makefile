# mopeclip build and test entry points. `make test` is what CI runs (.ci/run).
GO      ?= go
PKGS    ?= ./...
# Debian's torch/numpy/Pillow live in the system Python, not the first python3 on PATH.
PYTHON  ?= /usr/bin/python3
BENCH   ?= .
COUNT   ?= 6

.PHONY: all build test test-deps vet test-native test-noasm test-arm64 test-fuzz test-engines-emu generate-check bench demo cuda-check mope-cuda clean

all: build

build:
	$(GO) build -o bin/mope ./cmd/mope

## test: vet, native tests (PyTorch/Pillow parity included when /usr/bin/python3 has them), pure-Go (noasm) tests, arm64 under qemu, brief fuzzing.
test: test-deps vet generate-check test-native test-noasm test-arm64 test-fuzz test-engines-emu

## test-deps: install qemu-user-static and Debian's python3-torch/numpy/pil when missing.
test-deps:
	bash scripts/test-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet $(PKGS)
	$(GO) vet -tags noasm $(PKGS)
	GOARCH=arm64 $(GO) vet ./tensor/...
	GOARCH=arm64 $(GO) build ./...
	CGO_ENABLED=1 $(GO) vet -tags cuda,cudaemu ./cuda/ ./clip/lower/ ./mope/ ./cmd/mope/

test-native:
	$(GO) test -count=1 $(PKGS)

test-noasm:
	$(GO) test -count=1 -tags noasm ./tensor/... ./ops/... ./nn/...

test-arm64:
	@command -v qemu-aarch64-static >/dev/null || (echo "qemu-aarch64-static missing: apt-get install qemu-user-static (.ci/run does this)"; exit 1)
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static ./tensor/...

## generate-check: run tensor's go:generate (the assembly generators) in a
## temporary directory and fail when a generated file differs from the
## committed one (go generate ./tensor/ rewrites them in place).
generate-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	cp tensor/generate.go tensor/*_asmgen.go $$tmp/ && (cd $$tmp && $(GO) generate generate.go) && \
	n=0 && fail=0 && for f in $$tmp/*; do b=$$(basename $$f); \
		case $$b in generate.go|*_asmgen.go) continue;; esac; n=$$((n+1)); \
		cmp -s $$f tensor/$$b || { echo "tensor/$$b differs from what go generate writes: run go generate ./tensor/ and commit"; fail=1; }; \
	done && test $$n -gt 0 && test $$fail -eq 0 && echo "generate: $$n generated files in tensor/ up to date"

# The CUDA emulator builds cuda/kernels/*.cu through cgo; Go's build cache
# does not track those included files, so their hash goes into the flags
# (an edited kernel is rebuilt, not tested from a stale object).
EMU_ENV = CGO_ENABLED=1 CGO_CXXFLAGS="-g -O2 -DMC_KERNELS_HASH=$$(cat cuda/kernels/*.cu cuda/kernels/*.cuh cuda/emu/emu.h | sha1sum | cut -c1-12)"

## test-engines-emu: the engine table of clip/lower (reference, infer f32/bf16/int8,
## the MoPE scorer's path) with the CUDA towers on the CPU emulator, every CUDA
## kernel against the CPU reference there (./cuda: inference and training
## kernels, gradients, AdamW; about a minute), and the CLI's --device cuda
## tests (cgo, g++).
test-engines-emu:
	@command -v g++ >/dev/null || (echo "g++ missing: apt-get install g++ (the CUDA emulator is C++)"; exit 1)
	$(EMU_ENV) $(GO) test -count=1 -tags cuda,cudaemu -run 'TestEngines' ./clip/lower/
	$(EMU_ENV) $(GO) test -count=1 -tags cuda,cudaemu ./cuda/
	$(EMU_ENV) $(GO) test -count=1 -tags cuda,cudaemu -run 'TestDevice' ./mope/ ./cmd/mope/

test-fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./internal/safetensors 2>/dev/null | grep '^Fuzz'); do \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 10s ./internal/safetensors || exit 1; done

## bench: the GEMM and kernel benchmarks (benchstat-friendly).
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -count $(COUNT) ./tensor/ ./bench/...

## demo: the whole story on the built-in shapes world.
demo: build
	./bin/mope demo

cuda-check:
	$(MAKE) -C cuda check

## mope-cuda: bin/mope-cuda, the CLI with --device cuda (cgo against cuda.h and
## the stub libcuda; needs the toolkit headers: make -C cuda toolkit).
mope-cuda:
	CGO_ENABLED=1 CGO_CFLAGS="-I/usr/include/" CGO_LDFLAGS="-L/usr/lib/x86_64-linux-gnu/stubs" \
		$(GO) build -tags cuda -o bin/mope-cuda ./cmd/mope

clean:
	rm -rf bin
