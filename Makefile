# Pulse: real-time customer analytics over Kafka. `make` lists the targets.

CARGO ?= cargo
APT_PACKAGES := build-essential pkg-config zlib1g-dev libssl-dev
# The real tools the operations tests run: Prometheus and promtool, a headless browser, and
# openssl and curl for the HTTPS test.
TEST_APT_PACKAGES := prometheus chromium chromium-driver openssl curl
# Apache Kafka, the reference broker of the tests and benchmarks: its jars, resolved from Maven
# Central once into a per-user cache (outside the build tree); the harness reads the same path.
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/kafka/pom.xml)
export PULSE_KAFKA_LIBS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pulse/kafka-$(KAFKA_VERSION)

.DEFAULT_GOAL := help
.PHONY: help deps test-deps fuzz-deps kafka build run test check-rules fuzz fuzz-smoke bench lint fmt clean

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Installs the Debian packages named in $(1) that are missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps: ## Install what a fresh Debian machine lacks to build librdkafka (bundled) and Pulse.
	$(call apt_install,$(APT_PACKAGES))
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

test-deps: deps ## Install the real tools the tests run (Prometheus, promtool, Chromium, ChromeDriver), if missing.
	$(call apt_install,$(TEST_APT_PACKAGES))

kafka: ## Resolve Apache Kafka (broker and tools) from Maven Central into the cache the tests use, if missing; installs a JDK 17 and Maven when absent.
	@if [ -f "$(PULSE_KAFKA_LIBS)/.resolved" ]; then :; else \
		command -v java >/dev/null && command -v mvn >/dev/null || { \
			SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
			$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless maven; }; \
		echo "Resolving Apache Kafka $(KAFKA_VERSION) into $(PULSE_KAFKA_LIBS)"; \
		mvn -B -q -f tests/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
			-DoutputDirectory="$(PULSE_KAFKA_LIBS)" && touch "$(PULSE_KAFKA_LIBS)/.resolved"; \
	fi

build: deps ## Build the pulse binary.
	$(CARGO) build -p pulse

run: build ## Start Pulse on the embedded Kafka cluster with demo traffic (Ctrl-C stops it).
	$(CARGO) run -q -p pulse -- run

# The fuzz targets (tests/fuzz): cargo fuzz on the nightly toolchain, without a sanitizer
# (Pulse forbids unsafe code; panics, overflows and failed assertions are what is hunted).
FUZZ_TARGETS := input_json input_msgpack changelog_restore http_query
FUZZ := $(CARGO) +nightly fuzz
FUZZ_FLAGS := --fuzz-dir tests/fuzz --sanitizer none
FUZZ_SECONDS ?= 60
FUZZ_TMP := $(or $(TMPDIR),/tmp)/pulse-fuzz

fuzz-deps: deps ## Install the nightly toolchain and cargo-fuzz for the fuzz targets, if missing.
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.2

# New inputs go to a scratch directory first in the list, so a run never changes the checked-in
# corpus; a crashing input is written there too, and the run fails showing the end of its log.
define fuzz_each
	@for t in $(FUZZ_TARGETS); do \
		rm -rf $(FUZZ_TMP)/$$t $(FUZZ_TMP)/$$t-* && mkdir -p $(FUZZ_TMP)/$$t && \
		echo "fuzz $$t: $(2)" && \
		if $(FUZZ) run $(FUZZ_FLAGS) $$t $(FUZZ_TMP)/$$t tests/fuzz/corpus/$$t -- \
			-artifact_prefix=$(FUZZ_TMP)/$$t- -print_final_stats=1 $(1) > $(FUZZ_TMP)/$$t.log 2>&1; \
		then grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' $(FUZZ_TMP)/$$t.log; \
		else tail -n 60 $(FUZZ_TMP)/$$t.log; exit 1; fi; \
	done
endef

fuzz: fuzz-deps ## Re-run every fuzz target over its checked-in corpus, then fuzz each for FUZZ_SECONDS (60).
	$(call fuzz_each,-runs=0,the checked-in corpus)
	$(call fuzz_each,-max_total_time=$(FUZZ_SECONDS),$(FUZZ_SECONDS) s of new inputs)

fuzz-smoke: fuzz-deps ## The corpus and 5 s of new inputs per fuzz target (part of `make test`).
	$(call fuzz_each,-max_total_time=5,the corpus and 5 s of new inputs)

test: test-deps kafka check-rules fuzz-smoke ## Build and run every test: unit, property, CLI, end-to-end, fault (embedded cluster and Apache Kafka), monitoring tests and a short run of each fuzz target.
	$(CARGO) test --workspace --doc
	$(CARGO) test --workspace --all-targets

check-rules: test-deps ## Check the Prometheus alert rules and run their unit tests (promtool).
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts.test.yml

bench: deps kafka ## Run the benchmarks: hot path (criterion); memory per customer (10M customers, ~8 GiB, ~15 min); restore and end-to-end throughput and latency through Apache Kafka (release build).
	$(CARGO) bench -p pulse-benches

lint: ## Check formatting and clippy warnings.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code.
	$(CARGO) fmt --all

clean: ## Remove build output.
	$(CARGO) clean
