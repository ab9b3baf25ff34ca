# The two commands of the README:
#   make run   installs what is missing, builds, and starts one Tern node under ./var
#   make test  installs what is missing, builds, and runs every test
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test-deps build run test sanitize fuzz clean

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

# Coverage-guided fuzzing of every parser (clang/libFuzzer), FUZZ_SECONDS each;
# new inputs go to a scratch corpus, crashes to build-fuzz/crash-*.
FUZZ_SECONDS ?= 60
fuzz: test-deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON > /dev/null
	cmake --build build-fuzz -j $(JOBS)
	for f in build-fuzz/fuzz/fuzz-*; do case $$f in *-replay) continue;; esac; \
		n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
		dict=$$(ls fuzz/$${n#fuzz-}.dict fuzz/$$n.dict 2>/dev/null | head -1); \
		$$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build-fuzz/crash-$$n- \
			$${dict:+-dict=$$dict} build-fuzz/corpus-$$n fuzz/corpus/$$n || exit 1; done

clean:
	rm -rf $(BUILD) build-asan build-fuzz
