# Tools are built from pinned versions into .cache/tools/<name>-<version>.
SHELL := /bin/bash
TOOLS := $(CURDIR)/.cache/tools
KO_VERSION := v0.19.1
KO := $(TOOLS)/ko-$(KO_VERSION)/ko
GO_TEST_FLAGS ?=

.PHONY: all build test unit verify codegen install fuzz clean

all: build

## build: compile everything and the controller binary into bin/
build:
	go build ./...
	go build -o bin/controller ./cmd/controller

## test: what CI runs: unit and reconciler tests with the race detector
test: unit

unit:
	go test -race -count=1 $(GO_TEST_FLAGS) ./...

## fuzz: run each fuzz target for FUZZTIME (their seed corpora run in every `make test`)
FUZZTIME ?= 30s
fuzz:
	go test ./pkg/apis/custom/v1alpha1/ -run '^$$' -fuzz '^FuzzApplyParams$$' -fuzztime $(FUZZTIME)
	go test ./pkg/apis/custom/v1alpha1/ -run '^$$' -fuzz '^FuzzValidateImage$$' -fuzztime $(FUZZTIME)

## codegen: regenerate deepcopy, clientset, listers, informers and injection
codegen:
	./hack/update-codegen.sh

## verify: generated code is current, code is formatted and vetted, go.mod is tidy
verify:
	./hack/verify-codegen.sh
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go mod tidy -diff

$(KO):
	GOBIN=$(dir $(KO)) go install github.com/google/ko@$(KO_VERSION)

## install: ko apply -f config/ against the current KUBECONFIG (KO_DOCKER_REPO must be set)
install: $(KO)
	$(KO) apply -f config/

clean:
	rm -rf bin
