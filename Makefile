SHELL := /bin/bash
# Palisade: a containerd shim v2 that runs untrusted containers on gVisor with an
# enforced security floor. `make help` lists the targets.

include integration/tools/versions.env

GO ?= go
PREFIX ?= /usr/local
DESTDIR ?=
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
TOOLS_DIR ?= $(CURDIR)/_tools
BIN_DIR := $(CURDIR)/bin
GO_LDFLAGS := -X github.com/palisade-runtime/palisade/shim.Version=$(VERSION)
# Static binaries: they run inside minimal rootfs and test VMs too.
GO_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(GO_LDFLAGS)'
BINARIES := containerd-shim-palisade-v2 palisade-trampoline palisadectl
FUZZTIME ?= 10m
# make fuzz-ci: FUZZ_CI_TIME per target, at most FUZZ_CI_BUDGET seconds of
# fuzzing in all (shared among the targets), to keep CI near three minutes.
FUZZ_CI_TIME ?= 15s
FUZZ_CI_BUDGET ?= 150

export PALISADE_TOOLS_BIN := $(TOOLS_DIR)/bin
export PALISADE_BIN := $(BIN_DIR)

.PHONY: help build tools test unit integration apparmor-vm install demo bench fuzz fuzz-ci critest critest-tools kube-tools cluster cluster-down clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build Palisade's binaries into ./bin
	@mkdir -p $(BIN_DIR)
	$(GO_BUILD) -o $(BIN_DIR)/ $(addprefix ./cmd/,$(BINARIES))

tools: ## install the pinned containerd, ctr, runsc and runc into _tools (reused when present), and qemu
	TOOLS_DIR=$(TOOLS_DIR) bash integration/tools/install.sh

unit: ## unit tests, golden tests and short fuzz runs of every package but integration
	$(GO) vet ./...
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /integration) ./integration/readmesample ./integration/k8s/

integration: build tools critest-tools kube-tools ## integration tests against real containerd, ctr and runsc (root)
	$(GO) test -count=1 -timeout 60m -v ./integration/ 2>&1 | tee integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; exit $${PIPESTATUS[0]}

apparmor-vm: build tools ## boot Debian's cloud kernel under qemu (TCG) and prove AppArmor enforcement there (also part of integration)
	$(GO) test -count=1 -timeout 15m -v -run '^TestAppArmorVM$$' ./integration/

critest-tools: ## install the pinned crictl, critest and CNI plugins into _tools (reused when present)
	TOOLS_DIR=$(TOOLS_DIR) bash integration/tools/install.sh crictl critest cni

kube-tools: ## build the pinned kube-apiserver, kubelet, kubectl, kube-scheduler, kube-controller-manager and etcd into _tools (reused when present)
	TOOLS_DIR=$(TOOLS_DIR) bash integration/tools/install.sh kubernetes

CLUSTER_DIR := $(CURDIR)/_cluster

cluster: build tools critest-tools kube-tools ## start a one-node Kubernetes on Palisade in the background and print its KUBECONFIG (root)
	$(GO_BUILD) -o $(BIN_DIR)/palisade-cluster ./integration/k8s/cmd/palisade-cluster
	@$(BIN_DIR)/palisade-cluster up -state $(CLUSTER_DIR) -tools $(TOOLS_DIR)/bin -bin $(BIN_DIR)

cluster-down: ## stop the cluster of make cluster and remove everything it made
	@if [ -x $(BIN_DIR)/palisade-cluster ]; then $(BIN_DIR)/palisade-cluster down -state $(CLUSTER_DIR); \
		else echo "no cluster running"; fi

critest: build tools critest-tools ## critest's full suite on runc, containerd-shim-runc-v2 driving runsc, and Palisade with and without its floor (root)
	PALISADE_CRITEST=full $(GO) test -count=1 -timeout 4h -v -run '^TestCritest$$' ./integration/ 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; \
		status=$${PIPESTATUS[0]}; cat _critest-reports/full/summary.txt 2>/dev/null; exit $$status

test: build tools critest-tools kube-tools unit fuzz-ci integration ## everything: unit tests, short fuzz runs and integration tests

install: build ## install the shim, its trampoline and palisadectl, config.toml into /etc/palisade, the AppArmor profile into /etc/apparmor.d
	install -D -m 0755 $(BIN_DIR)/containerd-shim-palisade-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-palisade-v2
	install -D -m 0755 $(BIN_DIR)/palisade-trampoline $(DESTDIR)$(PREFIX)/bin/palisade-trampoline
	install -D -m 0755 $(BIN_DIR)/palisadectl $(DESTDIR)$(PREFIX)/bin/palisadectl
	install -D -m 0644 config.toml $(DESTDIR)/etc/palisade/config.toml
	install -D -m 0644 sandbox/apparmor/profiles/palisade-runsc $(DESTDIR)/etc/apparmor.d/palisade-runsc

demo: build tools ## start a private containerd and run a container under Palisade on gVisor
	bash integration/demo.sh

bench: build tools critest-tools kube-tools ## P1-P7: Palisade against containerd-shim-runc-v2 driving runsc (P7: against runc), into docs/benchmarks.md (root, ~20 min)
	bash integration/bench.sh

fuzz: ## run every fuzz target for FUZZTIME (default 10m) each
	GO=$(GO) bash integration/fuzz.sh $(FUZZTIME)

fuzz-ci: ## run every fuzz target briefly (FUZZ_CI_TIME each, FUZZ_CI_BUDGET seconds in all)
	GO=$(GO) FUZZ_BUDGET=$(FUZZ_CI_BUDGET) bash integration/fuzz.sh $(FUZZ_CI_TIME)

clean: ## remove built binaries (keeps _tools)
	rm -rf $(BIN_DIR)
