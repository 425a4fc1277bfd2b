# corio — the two commands that matter: `make run` and `make test`.
# CMake does the real work underneath; this file only picks build trees.
BUILD ?= ./build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
PORT ?= 8000
CMAKE_FLAGS ?=

.PHONY: all build run test test-asan bench install clean

all: build

# Missing Debian packages are installed first (as root; otherwise the
# apt-get command to run is printed).  NO_DEPS=1 skips the check.
deps-%:
	@[ -n "$(NO_DEPS)" ] || ./scripts/deps.sh $*

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps-build $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Serve the seed's response through the HTTP/1.1 module on 127.0.0.1:$(PORT)
# (Ctrl-C stops it gracefully).
run: build
	$(BUILD)/http_hello $(PORT)

# Build and run the whole suite on both backends (every test is registered
# once per backend).
test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-asan
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCORIO_SANITIZE=ON -DCORIO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

bench: deps-bench build
	BUILD=$(BUILD) ./bench/run_all.sh

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
