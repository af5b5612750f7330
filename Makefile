# qplay: the two commands a new user needs are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test bench bench-analysis clean models accuracy-table

all: build

deps:
	./scripts/install-deps.sh

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The playground in the browser: FP32 and both quantized ResNet-8s on the shipped 1,000-image
# sample, at http://127.0.0.1:8321/ (docs/API.md).
run: deps build
	./$(BUILD)/qplay serve

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# qplay against ONNX Runtime on this machine, same threads, same run (~20 min on 2 cores): writes
# docs/PERFORMANCE.md (batch 100, REFERENCE.md's setting) and docs/PERFORMANCE_BATCH16.md. A
# benchmark, not a test (not part of ctest). Needs node and node_modules/onnxruntime-node
# (`make deps`), checked by the script.
bench: deps configure
	cmake --build $(BUILD) -j$(JOBS) --target qplay
	QPLAY=$(BUILD)/qplay BENCH_OTHER_REPORT=docs/PERFORMANCE_BATCH16.md node bench/run_bench.js
	QPLAY=$(BUILD)/qplay BENCH_BATCH=16 BENCH_OUT=docs/PERFORMANCE_BATCH16.md BENCH_OTHER_REPORT=docs/PERFORMANCE.md \
	  node bench/run_bench.js

# The analysis on the whole test set (per-layer SQNR from caches, edit re-evaluation) next to
# ONNX Runtime, and the server's load check: writes docs/PERFORMANCE_ANALYSIS.md (~5 min).
bench-analysis: deps build
	QPLAY=$(BUILD)/qplay node bench/analysis_bench.js

clean:
	rm -rf $(BUILD)

# The two QDQ W8A8 models, regenerated with qplay's own quantizer (docs/QUANTIZE.md):
# int8 activations + int8 per-channel weights, and uint8 activations + int8 per-tensor weights.
# Settings: the best W8A8 cells of docs/ACCURACY.md.
QUANTIZE_INT8 ?= --act int8 --weights int8 --per-channel --method percentile
QUANTIZE_UINT8 ?= --act uint8 --weights int8 --method minmax --equalize --weight-range mse --bias-correction
models: build
	./$(BUILD)/qplay quantize models/resnet8_fp32.onnx -o models/resnet8_int8.onnx $(QUANTIZE_INT8)
	./$(BUILD)/qplay quantize models/resnet8_fp32.onnx -o models/resnet8_uint8.onnx $(QUANTIZE_UINT8)

# Benchmark, not a test: full-test-set accuracy at 4..8 bits for every method (tens of minutes).
accuracy-table: build
	BUILD=$(BUILD) ./scripts/accuracy_table.sh
