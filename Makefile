# corio — the two commands that matter: `make run` and `make test`.
# CMake does the real work underneath; this file only picks build trees.
BUILD ?= ./build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
VALGRIND_BUILD ?= build-valgrind
TSAN_CC ?= clang
JOBS ?= $(shell nproc)
PORT ?= 8000
CMAKE_FLAGS ?=

.PHONY: all build run test test-slow test-asan test-tsan test-valgrind bench sim sim-planted install clean format format-check

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

# The same suite on a machine made several times slower: every test pinned
# to one CPU next to a busy loop spinning on it (scripts/test-slow.sh), so
# a test that passes only on a quiet machine fails here.
test-slow: deps-test build
	./scripts/test-slow.sh $(BUILD)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-asan
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCORIO_SANITIZE=ON -DCORIO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite under ThreadSanitizer (each task is a TSan fiber, see
# src/arch/tsan.c).  ctest runs with address-space randomisation off when
# the system lets setarch do that (containers may refuse): clang 14's TSan
# aborts with "FATAL: ThreadSanitizer: unexpected memory mapping" on
# kernels that randomise mmap with more bits than it expects
# (vm.mmap_rnd_bits = 32); with it off the layout is always the classic one.
NO_ASLR = $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)
test-tsan: deps-tsan
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=$(TSAN_CC) -DCMAKE_BUILD_TYPE=Debug -DCORIO_TSAN=ON -DCORIO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && $(NO_ASLR) ctest --output-on-failure -j $(JOBS)

# The suite under valgrind memcheck (Debug, no sanitizers), epoll backend
# only: valgrind cannot see the kernel's io_uring writes into buffers
# (docs/architecture.md).  A memcheck error or a definite leak fails the
# test it happens in.
test-valgrind: deps-valgrind
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCORIO_VALGRIND=ON -DCORIO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(VALGRIND_BUILD) -j $(JOBS)
	cd $(VALGRIND_BUILD) && ctest --output-on-failure -j $(JOBS)

# The HTTP simulation suite (tests/sim_http.c): corio's HTTP server under
# the sim backend, seed by seed.  `make sim SEEDS=N` runs N seeds from a
# random start (FROM=S to choose it; the start is printed so the batch
# replays), `make sim SEED=S` runs one.  Each seed prints "seed S: trace
# HASH"; the closing line says "N passed, M failed".
SEEDS ?= 100
sim: build
	@if [ -n "$(SEED)" ]; then \
		$(BUILD)/tests/sim_http --seed $(SEED); \
	else \
		from=$${FROM:-$(FROM)}; [ -n "$$from" ] || from=$$(od -An -N3 -tu4 /dev/urandom | tr -d ' '); \
		echo "sim: $(SEEDS) seeds from $$from (make sim FROM=$$from SEEDS=$(SEEDS) replays them)"; \
		$(BUILD)/tests/sim_http --from $$from --seeds $(SEEDS); \
	fi

# A bug planted in a scratch copy of the tree (under /tmp) must be found
# within 1,000 seeds and its seed must replay it (tests/sim_planted_bug.sh:
# a skipped keep-alive time-out, then a lost last byte of pipelined answers).
sim-planted:
	BUG=keepalive ./tests/sim_planted_bug.sh
	BUG=pipeline ./tests/sim_planted_bug.sh

bench: deps-bench build
	BUILD=$(BUILD) ./bench/run_all.sh

# The style is .clang-format's, as clang-format 14 (Debian 12) applies it;
# another major version may disagree on details, hence the warning.
# format rewrites every tracked .c/.h file in place; format-check changes
# nothing and fails, listing each difference, if any file is not formatted.
CLANG_FORMAT ?= clang-format
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src include tests tools examples bench fuzz -name '*.[ch]')
FORMAT_VERSION_CHECK = $(CLANG_FORMAT) --version | grep -q 'version 14\.' || \
	echo "warning: .clang-format is defined by clang-format 14; $$($(CLANG_FORMAT) --version) may format differently" >&2

format: deps-format
	@$(FORMAT_VERSION_CHECK)
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check: deps-format
	@$(FORMAT_VERSION_CHECK)
	$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(VALGRIND_BUILD)
