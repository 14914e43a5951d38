# Tools are built from pinned versions into ~/.cache/imageprepull/tools/<name>-<version> by hack/build-tools.sh.
SHELL := /bin/bash
# go.mod names the toolchain the controller ships with (a patch release with
# the standard library's security fixes); let the go command fetch it even
# where the machine says GOTOOLCHAIN=local.
export GOTOOLCHAIN := auto
GO_TEST_FLAGS ?=
# Everything but the race detector's unit tests builds as ko builds the controller's image
# (CGO_ENABLED=0, -trimpath): vet, e2e, chaos, the bench, the demo, and the programs and images the
# local cluster builds all share one compile of the dependency graph with the image, which on a cold
# machine is compiled once for all of them. The race detector needs cgo, so `make unit` compiles the
# graph a second time, instrumented. hack/build-tools.sh builds the tools as their own modules; those
# that share packages with the controller (Kubernetes, etcd, Tekton) with both settings, to share them.
export CGO_ENABLED := 0
export GOFLAGS := $(strip $(GOFLAGS) -trimpath)
# The OpenKruise release of the local cluster (hack/build-tools.sh's default
# when unset, where each pinned release lives): make e2e KRUISE_VERSION=v1.8.0.
export KRUISE_VERSION

.PHONY: all build test unit e2e e2e-kruise-previous chaos bench vulncheck verify codegen install release fuzz clean tools demo cluster-up cluster-down

all: build

## build: compile everything and the controller binary into bin/
build:
	go build ./...
	go build -o bin/controller ./cmd/controller

## test: what CI runs: e2e, then the unit and reconciler tests with the race detector
# e2e runs first, and the race detector's compile of the graph (most of make unit on a cold machine; the
# programs are not linked, no test needs them)
# runs beside it at a low CPU priority: e2e's cluster mostly waits, so the compile takes the CPU it
# leaves idle, and make unit then finds the graph compiled. (Below the cluster, above what .ci/run runs
# beside the suites at the lowest; and raised back, where the user may, once e2e is done and unit waits
# for it.) Both run, whichever fails.
test: tools
	@CGO_ENABLED=1 nice -n 10 go build -race $$(go list -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./...) > /dev/null 2>&1 & beside=$$!; \
	  trap 'kill $$beside 2> /dev/null' INT TERM; \
	  $(MAKE) --no-print-directory e2e; e2e=$$?; \
	  renice -n 0 -p $$beside > /dev/null 2>&1; wait $$beside; \
	  $(MAKE) --no-print-directory unit; unit=$$?; \
	  [ $$e2e = 0 ] && [ $$unit = 0 ]

unit:
	CGO_ENABLED=1 go test -race -count=1 $(GO_TEST_FLAGS) ./...

## e2e: PipelineRuns through real Tekton and OpenKruise on a fresh local cluster
E2E_RUN ?= .
E2E_SKIP ?=
e2e: tools
	go test -tags e2e -count=1 -timeout 40m -run '$(E2E_RUN)' $(if $(E2E_SKIP),-skip '$(E2E_SKIP)') $(GO_TEST_FLAGS) ./test/e2e/

## e2e-kruise-previous: the e2e cases whose outcome OpenKruise decides, on its previous line (v1.8.0)
# What OpenKruise decides: its webhook's defaults and checks (the job's shape, which the
# controller compares, and large jobs), its CRDs and feature gate, job deadlines, deletion
# and TTL, the nodes a selector reaches, NodeImage reports and reasons, pull Secret copies,
# its workload kinds, and the real kruise-daemon. The rest (Tekton, the controller's own
# checks, installing and releasing) runs the same on either line and runs once, in make e2e.
KRUISE_PREVIOUS_CASES := TestKruiseFeatureGateOff|TestKruiseCRDAbsent|TestPipelineRunCancelled|TestPipelineRunTimeout|\
  TestCustomRunTimeoutRetries|TestTTLJobsGoOnceTheRunEnds|TestGarbageCollectorDeletesWhatTheControllerOwns|\
  TestLargestRunIsStored|TestAJobMadeAheadDoesNotMakeAFailingRunSucceed|TestParamsOnlySeveralImages|\
  TestNamedPolicyWithMatchExpressions|TestEmbeddedTaskSpecByNodeNames|TestPodSelector|TestFailures|\
  TestKruiseCopiesOfPullSecrets|TestRealNode|TestEveryWorkloadKindIsRead|\
  TestWorkloadRunningNodesAreWhereTheSchedulerBoundItsPods|TestLargestWorkloadTargetIsStored
empty :=
space := $(empty) $(empty)
# TestRealNode's seed cases (the pipeline whole: a build in a pod, then a rollout; the seed's kubectl
# Task) run once: each is one more real pull, which the other cases of TestRealNode check on both lines.
# So does the node that joins after a pre-pull: it starts a second real node (about a minute), and
# Kruise's part in it (a completed job reaches no node that joins later) is checked on v1.9.1 only.
e2e-kruise-previous:
	$(MAKE) e2e KRUISE_VERSION=$$(./hack/build-tools.sh --kruise-previous-version) E2E_RUN='^($(subst $(space),,$(KRUISE_PREVIOUS_CASES)))$$' E2E_SKIP='^TestRealNode/^(the_seed|a_node_that_joins)'

## chaos: 200 CustomRuns through faults (kill -9, failover, API server restart, Kruise down) on a fresh cluster
chaos: tools
	@mkdir -p .cache; go test -tags chaos -count=1 -timeout 30m -v ./test/chaos/ > .cache/chaos.log 2>&1; rc=$$?; \
	  grep -E '^(=== RUN|--- |PASS|FAIL|ok)|fault [0-9]+:|chaos:|chaos_test.go:[0-9]+: [^c]' .cache/chaos.log; \
	  if [ $$rc != 0 ]; then echo "--- the last 150 lines of .cache/chaos.log:"; tail -150 .cache/chaos.log; fi; exit $$rc

## bench: latency, API cost and footprint at 10/100/1000 runs on 200 simulated nodes, and one run on 2000 (BENCH_FLAGS=-levels=10,100)
bench: tools
	go run ./test/cmd/bench $(BENCH_FLAGS)

## vulncheck: govulncheck against a vulnerability database built offline from golang.org/x/vulndb
vulncheck:
	./hack/vulncheck.sh

## tools: build the local cluster's programs once (~/.cache/imageprepull/tools, shared by every clone)
tools:
	./hack/build-tools.sh
	./hack/install-system-packages.sh containerd runc containernetworking-plugins prometheus busybox-static

## demo: start the local cluster, run the seed pipeline's pre-pull, describe it with tkn, keep the cluster up
demo: tools
	@mkdir -p .local && go build -o .local/cluster ./test/cmd/cluster && .local/cluster demo

## cluster-up: start the local cluster in the background and print its KUBECONFIG
cluster-up: tools
	@if [ -f .local/ready ]; then echo "already up: export KUBECONFIG=$$(cat .local/kubeconfig-path)"; exit 0; fi; \
	  mkdir -p .local; rm -f .local/ready; \
	  go build -o .local/cluster ./test/cmd/cluster; \
	  nohup .local/cluster up > .local/cluster.log 2>&1 & \
	  for i in $$(seq 600); do \
	    if [ -f .local/ready ]; then echo "export KUBECONFIG=$$(cat .local/kubeconfig-path)"; exit 0; fi; \
	    if ! kill -0 $$! 2>/dev/null; then cat .local/cluster.log; exit 1; fi; sleep 1; \
	  done; echo "the cluster did not come up in 10 minutes: see .local/cluster.log"; exit 1

## cluster-down: stop the cluster that cluster-up started
cluster-down:
	@if [ -f .local/pid ] && kill -0 $$(cat .local/pid) 2>/dev/null; then \
	  pid=$$(cat .local/pid); kill $$pid; while kill -0 $$pid 2>/dev/null; do sleep 0.2; done; echo "stopped"; \
	else echo "no cluster is running"; fi; rm -f .local/pid .local/ready .local/kubeconfig-path

## fuzz: run each fuzz target for FUZZTIME, Nx executions or a duration (their corpora run in every `make test`);
## run it after changing what a target parses (CI runs the corpora only)
# A count by default: with a duration, Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" as the time runs out (golang/go#75804, fixed in Go 1.27); seen here once.
FUZZTIME ?= 20000x
fuzz:
	go test ./pkg/apis/custom/v1alpha1/ -run '^$$' -fuzz '^FuzzApplyParams$$' -fuzztime $(FUZZTIME)
	go test ./pkg/apis/custom/v1alpha1/ -run '^$$' -fuzz '^FuzzValidateImage$$' -fuzztime $(FUZZTIME)
	go test ./pkg/apis/custom/v1alpha1/ -run '^$$' -fuzz '^FuzzDecodeSpec$$' -fuzztime $(FUZZTIME)
	go test ./pkg/config/ -run '^$$' -fuzz '^FuzzAllowedImagesNeverAllowsAll$$' -fuzztime $(FUZZTIME)

## codegen: regenerate deepcopy, clientset, listers, informers and injection
codegen:
	./hack/update-codegen.sh

## verify: generated code is current, code is formatted and vetted, go.mod is tidy
verify:
	./hack/verify-codegen.sh
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./test/...
	go mod tidy -diff

# With KO_DOCKER_REPO unset and the local cluster up (make cluster-up), ko
# builds on the local registry's base image, pushes there and applies there;
# that base is multi-platform (make release builds for each), and from it ko
# builds linux/amd64 unless GOARCH names this machine's.
define ko
	@./hack/build-tools.sh ko
	@if [ -z "$${KO_DOCKER_REPO:-}" ] && [ -f .local/ready ]; then \
	  export KO_DOCKER_REPO=$$(cat .local/registry)/imageprepull KO_DEFAULTBASEIMAGE=$$(cat .local/base-image) GOARCH=$$(go env GOARCH) \
	    KUBECONFIG=$$(cat .local/kubeconfig-path) PATH=$$(dirname $$(./hack/build-tools.sh --path kubectl)):$$PATH; \
	  flags=--insecure-registry; \
	fi; \
	$$(./hack/build-tools.sh --path ko) $(1) $$flags -f config/ $(2)
endef

## install: ko apply -f config/ against the current KUBECONFIG (or the local cluster's)
install:
	$(call ko,apply)

## release: make release VERSION=vX.Y.Z: dist/VERSION/release.yaml (the image for linux/amd64 and linux/arm64,
## pinned by digest) and its SBOMs, pushed to KO_DOCKER_REPO (or the local cluster's registry)
release:
	VERSION=$(VERSION) ./hack/release.sh

clean:
	rm -rf bin
