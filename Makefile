# The two commands of the README:
#   make run   installs what is missing, builds, and starts one Tern node under ./var
#   make test  installs what is missing, builds, and runs every test
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test-deps build run test sanitize fuzz fuzz-build fuzz-ci clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build $(BUILD) -j $(JOBS) --target ternd ternctl

run: build
	scripts/run.sh $(BUILD)

test: test-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize: test-deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON > /dev/null
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir build-asan --output-on-failure -j $(JOBS)

# Coverage-guided fuzzing (clang/libFuzzer) of every parser and of whole IMAP
# and LMTP sessions on an in-process server: FUZZ_SECONDS per target, FUZZ_JOBS
# targets at once (fuzz/run.sh). New inputs go to a scratch corpus; a finding
# fails the run with its report and the path of the input, under
# build-fuzz/findings/. fuzz-ci is the short run CI does after `make sanitize`
# (20 s a target unless FUZZ_SECONDS is given on the command line).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS_ALL := $(basename $(notdir $(wildcard fuzz/fuzz-*.c)))
fuzz-build: test-deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON > /dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS_ALL)

fuzz: fuzz-build
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

fuzz-ci: FUZZ_SECONDS = 20
fuzz-ci: fuzz-build
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
