# qplay: the two commands a new user needs are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test bench clean

all: build

deps:
	./scripts/install-deps.sh

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD) -j$(JOBS)

# The main job on the embedded default: FP32 ResNet-8 on the shipped 1,000-image sample.
run: deps build
	./$(BUILD)/qplay eval

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# qplay against ONNX Runtime on this machine, same threads, same run (~10 min on 2 idle cores):
# writes docs/PERFORMANCE.md. A benchmark, not a test (not part of ctest).
bench: deps configure
	cmake --build $(BUILD) -j$(JOBS) --target qplay
	QPLAY=$(BUILD)/qplay node bench/run_bench.js

clean:
	rm -rf $(BUILD)
