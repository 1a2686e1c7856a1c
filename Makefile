# The two commands of the README's quick start, and a few more for developers.
#   make run    install what is missing, build a release build, run ringscand in the foreground
#   make check  install what is missing, build, run every test (CI runs this with CI=true)

RELEASE_DIR := build/release
RUN_DIR     := $(CURDIR)/run
RINGSCAND   := $(RELEASE_DIR)/tools/ringscand/ringscand

.PHONY: all setup build run check check-asan bench clean

all: build

setup:
	@tools/setup-debian.sh

build: setup
	cmake --preset release
	cmake --build --preset release

# Foreground daemon on 127.0.0.1:3310 and ./run/ringscand.sock, embedded default database.
run: build
	@mkdir -p $(RUN_DIR)
	@printf '%s\n' \
	    '# Written by make run: ringscand with the embedded default database.' \
	    'TCPSocket 3310' \
	    'TCPAddr 127.0.0.1' \
	    'LocalSocket $(RUN_DIR)/ringscand.sock' \
	    'Foreground yes' \
	    > $(RUN_DIR)/ringscand.conf
	exec $(RINGSCAND) --config-file=$(RUN_DIR)/ringscand.conf

check: build
	ctest --preset release

# The same tests on the ASan+UBSan build.
check-asan: setup
	cmake --preset dev
	cmake --build --preset dev
	ctest --preset dev

bench: build
	$(RELEASE_DIR)/bench/bench_matcher
	bench/run_bench.sh $(RELEASE_DIR)

clean:
	rm -rf build run
