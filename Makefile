# Pulse: real-time customer analytics over Kafka. `make` lists the targets.

CARGO ?= cargo
APT_PACKAGES := build-essential pkg-config zlib1g-dev libssl-dev
# The real tools the operations tests run: Prometheus and promtool, and a headless browser.
TEST_APT_PACKAGES := prometheus chromium chromium-driver openssl
# Apache Kafka, the reference broker of the tests and benchmarks: its jars, resolved from Maven
# Central once into a per-user cache (outside the build tree); the harness reads the same path.
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/kafka/pom.xml)
export PULSE_KAFKA_LIBS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pulse/kafka-$(KAFKA_VERSION)

.DEFAULT_GOAL := help
.PHONY: help deps test-deps kafka build run test check-rules bench lint fmt clean

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

test: test-deps kafka check-rules ## Build and run every test: unit, property, CLI, end-to-end, fault (embedded cluster and Apache Kafka) and monitoring tests.
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
