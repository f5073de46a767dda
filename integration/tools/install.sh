#!/usr/bin/env bash
# Installs the pinned tools into $TOOLS_DIR/bin (default: <repo>/_tools/bin), building
# each with `go install` at the version in versions.env. A binary already present with a
# matching version stamp is reused, so a second run costs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
TOOLS_DIR=${TOOLS_DIR:-$repo/_tools}
bin=$TOOLS_DIR/bin
stamps=$TOOLS_DIR/stamps
mkdir -p "$bin" "$stamps"

log() { printf 'tools: %s\n' "$*" >&2; }

debian() {
	apt_install $DEBIAN_PACKAGES
}

# qemu: what TestAppArmorVM (make apparmor-vm) needs on the host.
qemu() {
	apt_install $VM_DEBIAN_PACKAGES
}

# apt_install PACKAGE...: installs those not installed yet, without recommends.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# gobuild NAME STAMP ENV... -- GO-INSTALL-ARGS...: runs go install unless the stamp says
# this exact version was built before.
gobuild() {
	local name=$1 stamp=$2; shift 2
	local envs=()
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	if [ "$(cat "$stamps/$name" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "building $name ($stamp)"
	env GOBIN="$bin" GOFLAGS=-buildvcs=false "${envs[@]}" go install "$@"
	echo "$stamp" >"$stamps/$name"
}

containerd() {
	gobuild containerd "$CONTAINERD_VERSION" CGO_ENABLED=1 -- \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

# runsc must be static: a cgo build fails inside runsc's empty chroot because the ELF
# interpreter is missing there.
runsc() {
	gobuild runsc "$RUNSC_VERSION" CGO_ENABLED=0 -- "gvisor.dev/gvisor/runsc@$RUNSC_VERSION"
}

# runc needs cgo and libseccomp for seccomp support (build tag seccomp).
runc() {
	gobuild runc "$RUNC_VERSION" CGO_ENABLED=1 -- -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
}

crictl() {
	gobuild crictl "$CRI_TOOLS_VERSION" CGO_ENABLED=0 -- "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
}

cni() {
	gobuild cni "$CNI_PLUGINS_VERSION" CGO_ENABLED=0 -- \
		"github.com/containernetworking/plugins/plugins/main/bridge@$CNI_PLUGINS_VERSION" \
		"github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
		"github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" \
		"github.com/containernetworking/plugins/plugins/meta/portmap@$CNI_PLUGINS_VERSION"
}

# critest's package holds only test files, so it is built with go test -c inside the
# cri-tools module from the module cache.
critest() {
	[ "$(cat "$stamps/critest" 2>/dev/null)" = "$CRI_TOOLS_VERSION" ] && return 0
	log "building critest ($CRI_TOOLS_VERSION)"
	local dir
	dir=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go test -c -o "$bin/critest" ./cmd/critest)
	echo "$CRI_TOOLS_VERSION" >"$stamps/critest"
}

# modbuild NAME STAMP MODULE-DIR -- GO-BUILD-ARGS...: runs go build -o $bin inside one
# of the tools modules under integration/tools, whose go.mod and go.sum pin what is
# built. The stamp also names a hash of that go.sum, so a changed pin rebuilds.
modbuild() {
	local name=$1 version=$2 dir=$here/$3; shift 4
	local stamp
	stamp="$version $(sha256sum "$dir/go.sum" | cut -c1-16)"
	if [ "$(cat "$stamps/$name" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	log "building $name ($version)"
	(cd "$dir" && env CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -o "$bin/" "$@")
	echo "$stamp" >"$stamps/$name"
}

# kubernetes: the control plane and node of the one-node cluster. The version goes in
# through -X as Kubernetes' own build does; without it the binaries report v0.0.0 and
# kubectl warns about version skew.
kubernetes() {
	grep -q "k8s.io/kubernetes $KUBERNETES_VERSION\$" "$here/k8s/go.mod" ||
		{ log "integration/tools/k8s/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION"; return 1; }
	modbuild kubernetes "$KUBERNETES_VERSION" k8s -- \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kube-controller-manager
	etcd
}

etcd() {
	grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$here/etcd/go.mod" ||
		{ log "integration/tools/etcd/go.mod does not require etcd $ETCD_VERSION"; return 1; }
	modbuild etcd "$ETCD_VERSION" etcd -- -ldflags "-s -w" .
}

targets=${*:-debian qemu containerd runsc runc}
for t in $targets; do
	"$t"
done
log "ready in $bin"
