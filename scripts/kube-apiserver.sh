#!/usr/bin/env bash
# A real kube-apiserver and etcd for the integration tests, built from the Go module in
# tests/kube-apiserver/ and cached OUTSIDE the clone, so every clone on this machine shares them:
#
#   ${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}/kube-apiserver-<version>-<hash>/
#       kube-apiserver  etcd  versions.txt  stamp (written last)
#
# <hash> covers go.mod, go.sum, etcd/main.go and this script: change any of them and the next
# `build` makes a new directory (ones unused for 30 days are pruned). Go's own build and module
# caches ($(go env GOCACHE), $(go env GOMODCACHE)) keep their defaults and persist on the machine
# too, so a rebuild after such a change takes about a minute instead of several.
#
#   scripts/kube-apiserver.sh build        build unless the cache directory is complete (make kube-apiserver)
#   scripts/kube-apiserver.sh path         print the cache directory (tests read it)
#   scripts/kube-apiserver.sh start DIR    run etcd + kube-apiserver on 127.0.0.1, state in DIR
#                                          (ports: ETCD_PORT, default 23790; APISERVER_PORT, default 16443)
#   scripts/kube-apiserver.sh stop DIR     stop what `start DIR` started
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOD=$ROOT/tests/kube-apiserver
SCRIPT=$ROOT/scripts/kube-apiserver.sh
CACHE=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

die() { echo "kube-apiserver.sh: $*" >&2; exit 1; }

# The Kubernetes release, from go.mod (`k8s.io/kubernetes vX.Y.Z`).
VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$MOD/go.mod")
[[ -n $VERSION ]] || die "no k8s.io/kubernetes requirement in $MOD/go.mod"
HASH=$(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/etcd/main.go" "$SCRIPT" | sha256sum | cut -c1-12)
DIR=$CACHE/kube-apiserver-$VERSION-$HASH

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  else die "Go is required to build kube-apiserver (go 1.24 or newer on PATH or at /usr/local/go/bin/go)"
  fi
}

build() {
  if [[ -f $DIR/stamp ]]; then
    touch "$DIR/stamp"   # in use: keeps it from being pruned
    echo "kube-apiserver $VERSION: up to date in $DIR (nothing to do)"
    return 0
  fi
  mkdir -p "$CACHE"
  # One build at a time per machine: a second clone running `make test` waits, then reuses.
  exec 9>"$CACHE/.kube-apiserver.lock"
  if ! flock -n 9; then
    echo "kube-apiserver $VERSION: another build is running; waiting for it…"
    flock 9
  fi
  if [[ -f $DIR/stamp ]]; then
    echo "kube-apiserver $VERSION: built meanwhile in $DIR (nothing to do)"
    return 0
  fi
  local go start tmp
  go=$(find_go)
  start=$(date +%s)
  echo "kube-apiserver $VERSION: building into $DIR with $($go version | cut -d' ' -f3-)"
  echo "  (a cold build takes several minutes and ~2 GB of Go build cache; later builds reuse it)"
  tmp=$(mktemp -d "$CACHE/.tmp-kube-apiserver-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$(cut -d. -f1 <<<"${VERSION#v}")"
  ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$VERSION") -X $pkg.gitTreeState=clean"
  (
    cd "$MOD"
    export CGO_ENABLED=0 GOFLAGS=-mod=readonly
    "$go" build -buildvcs=false -trimpath -tags providerless -ldflags "$ldflags" \
      -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    echo "  kube-apiserver built after $(( $(date +%s) - start )) s"
    "$go" build -buildvcs=false -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./etcd
    echo "  etcd built after $(( $(date +%s) - start )) s"
  )
  {
    "$tmp/kube-apiserver" --version
    echo "etcd $("$tmp/etcd" --version | awk '/etcd Version/ { print $3 }')"
    "$go" version
  } >"$tmp/versions.txt"
  date -u +%FT%TZ >"$tmp/stamp"
  chmod 755 "$tmp"
  rm -rf "$DIR"   # a directory without a stamp is a leftover; rename needs the name free
  mv -T "$tmp" "$DIR"
  trap - EXIT
  # Builds of other go.mod/script versions nobody used for 30 days go (each is ~120 MB).
  find "$CACHE" -mindepth 2 -maxdepth 2 -path "$CACHE/kube-apiserver-*/stamp" -mtime +30 -printf '%h\n' |
    while read -r old; do echo "  pruning unused $old"; rm -rf "$old"; done
  echo "kube-apiserver $VERSION: built in $(( $(date +%s) - start )) s: $DIR ($(du -sh "$DIR" | cut -f1))"
  sed 's/^/  /' "$DIR/versions.txt"
}

# --- start/stop for humans ---------------------------------------------------------------------

start() {
  local state=${1:?usage: kube-apiserver.sh start DIR}
  [[ -f $DIR/stamp ]] || die "not built: run \`make kube-apiserver\` first"
  local etcd_port=${ETCD_PORT:-23790} port=${APISERVER_PORT:-16443}
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  [[ -f $state/apiserver.pid ]] && kill -0 "$(cat "$state/apiserver.pid")" 2>/dev/null \
    && die "already running in $state (kube-apiserver.sh stop $state)"
  mkdir -p "$state/certs" "$state/etcd"
  [[ -f $state/sa.key ]] || openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
  local token
  if [[ -f $state/tokens.csv ]]; then token=$(cut -d, -f1 "$state/tokens.csv" | head -1)
  else token=$(openssl rand -hex 16); echo "$token,admin,admin-uid,system:masters" >"$state/tokens.csv"
  fi
  "$DIR/etcd" --name gatehouse --data-dir "$state/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "gatehouse=http://127.0.0.1:$((etcd_port + 1))" \
    --listen-metrics-urls "http://127.0.0.1:$((etcd_port + 2))" \
    --log-level warn >"$state/etcd.log" 2>&1 &
  echo $! >"$state/etcd.pid"
  "$DIR/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --cert-dir "$state/certs" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/sa.key" --service-account-signing-key-file "$state/sa.key" \
    --token-auth-file "$state/tokens.csv" --authorization-mode Node,RBAC \
    --service-cluster-ip-range 10.96.0.0/24 --enable-priority-and-fairness=false --profiling=false \
    >"$state/apiserver.log" 2>&1 &
  echo $! >"$state/apiserver.pid"
  local t0=$SECONDS
  until curl -sfk -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz" >/dev/null; do
    kill -0 "$(cat "$state/apiserver.pid")" 2>/dev/null || { tail -20 "$state/apiserver.log" >&2; die "kube-apiserver exited"; }
    (( SECONDS - t0 < 60 )) || die "kube-apiserver not ready after 60 s; see $state/apiserver.log"
    sleep 0.2
  done
  cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $state/certs/apiserver.crt
contexts:
- name: gatehouse
  context: {cluster: gatehouse, user: admin}
current-context: gatehouse
users:
- name: admin
  user: {token: $token}
EOF
  echo "kube-apiserver ready on https://127.0.0.1:$port (etcd on 127.0.0.1:$etcd_port)"
  echo "  export KUBECONFIG=$state/kubeconfig; logs in $state/*.log; stop: $SCRIPT stop $state"
}

stop() {
  local state=${1:?usage: kube-apiserver.sh stop DIR} name pid
  for name in apiserver etcd; do
    [[ -f $state/$name.pid ]] || continue
    pid=$(cat "$state/$name.pid")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "stopped $name ($pid)"
    fi
    rm -f "$state/$name.pid"
  done
}

case ${1:-} in
  build) build ;;
  path) echo "$DIR" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 build|path|start DIR|stop DIR" >&2; exit 2 ;;
esac
