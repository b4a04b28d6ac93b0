#!/usr/bin/env bash
# The ext auth walkthrough on this machine: demo auth server, echo backend, `gatehouse
# standalone` watching .run/manifests, and a real Envoy bootstrapped by `gatehouse bootstrap`.
#
#   scripts/walkthrough.sh          start everything, print the walkthrough, wait for Ctrl-C
#   scripts/walkthrough.sh --auto   also replay the walkthrough's steps, print what curl sees,
#                                   and stop (exit 1 if a step does not behave as documented)
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY=${GATEHOUSE_ENVOY:-$PWD/.venv/bin/envoy}
BIN=${GATEHOUSE_BIN_DIR:-$PWD/target/debug}
RUN=$PWD/.run
LISTENER_PORT=8080 HTTPS_PORT=8443 XDS_PORT=18000 ADMIN_PORT=19001 DEBUG_PORT=19002 ENVOY_ADMIN_PORT=19000 AUTHZ_PORT=9000 ECHO_PORT=3000
AUTO=false
[[ ${1:-} == --auto ]] && AUTO=true

for bin in "$BIN/gatehouse" "$BIN/gatehouse-ext-authz" "$BIN/gatehouse-echo"; do
  [[ -x $bin ]] || { echo "missing $bin: run 'cargo build --workspace' (make run does)" >&2; exit 1; }
done
[[ -x $ENVOY ]] || { echo "missing Envoy at $ENVOY: run 'make envoy'" >&2; exit 1; }
for port in $LISTENER_PORT $HTTPS_PORT $XDS_PORT $ADMIN_PORT $DEBUG_PORT $ENVOY_ADMIN_PORT $AUTHZ_PORT $ECHO_PORT; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port on 127.0.0.1 is already in use; stop what holds it and try again" >&2; exit 1
  fi
done

rm -rf "$RUN" && mkdir -p "$RUN/manifests" "$RUN/logs"
cp examples/ext-auth/base/*.yaml "$RUN/manifests/"
# The certificate of the HTTPS step (5): a Secret no listener uses until then.
"$BIN/gatehouse" certificate --hostname www.example.com --secret kgateway-system/www-example-com \
  --cert-out "$RUN/www.example.com.crt" >"$RUN/manifests/www-example-com-secret.yaml"

pids=()
sleeper=
cleanup() {
  trap - INT TERM EXIT
  [[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null || true
  echo; echo "stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; logs are in $RUN/logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # name, command…
  local name=$1; shift
  "$@" >"$RUN/logs/$name.log" 2>&1 &
  pids+=($!)
}
wait_for() { # what, command…
  local what=$1; shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "$what did not come up; see $RUN/logs" >&2; exit 1
}

start ext-authz "$BIN/gatehouse-ext-authz" --grpc-addr 127.0.0.1:$AUTHZ_PORT --http-addr off
start echo "$BIN/gatehouse-echo" --addr 127.0.0.1:$ECHO_PORT --name httpbin
start gatehouse "$BIN/gatehouse" standalone --manifests "$RUN/manifests" --listener-address 127.0.0.1 \
  --xds-address 127.0.0.1:$XDS_PORT --admin-address 127.0.0.1:$ADMIN_PORT --debug-address 127.0.0.1:$DEBUG_PORT
wait_for "gatehouse" curl -sf http://127.0.0.1:$ADMIN_PORT/readyz
"$BIN/gatehouse" bootstrap --gateway kgateway-system/http --xds-address 127.0.0.1:$XDS_PORT \
  --admin-port $ENVOY_ADMIN_PORT >"$RUN/envoy-bootstrap.yaml"
start envoy "$ENVOY" -c "$RUN/envoy-bootstrap.yaml" --disable-hot-restart -l warning
wait_for "envoy" curl -sf -o /dev/null http://127.0.0.1:$LISTENER_PORT/headers -H "host: www.example.com"

cat <<TXT

Gatehouse is serving the ext auth walkthrough to a real Envoy.
  Envoy listener   http://localhost:$LISTENER_PORT   (Gateway kgateway-system/http)
  Gatehouse admin  http://localhost:$ADMIN_PORT/metrics  /readyz;  debug  http://localhost:$DEBUG_PORT/debug/status  /debug/xds  /debug/explain
  Watched dir      $RUN/manifests   (edit, add or remove YAML: Envoy follows)
  Logs             $RUN/logs/

1. No policy yet: 200
   curl -i localhost:$LISTENER_PORT/headers -H "host: www.example.com"
2. Protect the whole Gateway:
   cp examples/ext-auth/steps/01-gateway-policy.yaml $RUN/manifests/
   curl -i localhost:$LISTENER_PORT/headers -H "host: www.example.com"                      # 403, x-ext-authz-check-result: denied
3. curl -i localhost:$LISTENER_PORT/headers -H "host: www.example.com" -H "x-ext-authz: allow"  # 200, backend sees allowed
4. Switch ext auth off for the httpbin route:
   cp examples/ext-auth/steps/02-route-disable.yaml $RUN/manifests/
   curl -i localhost:$LISTENER_PORT/headers -H "host: www.example.com"                      # 200 without auth
5. Serve HTTPS too (the certificate is in $RUN/manifests/www-example-com-secret.yaml), auth back on:
   cp examples/ext-auth/steps/03-https-listener.yaml $RUN/manifests/gateway.yaml
   rm $RUN/manifests/02-route-disable.yaml
   curl -i --cacert $RUN/www.example.com.crt --resolve www.example.com:$HTTPS_PORT:127.0.0.1 https://www.example.com:$HTTPS_PORT/headers   # 403
   curl -i --cacert $RUN/www.example.com.crt --resolve www.example.com:$HTTPS_PORT:127.0.0.1 https://www.example.com:$HTTPS_PORT/headers -H "x-ext-authz: allow"   # 200
TXT

if ! $AUTO; then
  echo; echo "Ctrl-C stops everything."
  # `wait` on a background sleep lets the INT/TERM trap run at once.
  while true; do sleep 3600 & sleeper=$!; wait $sleeper || true; done
fi

url=http://127.0.0.1:$LISTENER_PORT/headers
code() { curl -s -o /dev/null -w '%{http_code}' "$url" -H "host: www.example.com" "$@"; }
expect() { # step, want, command…
  local step=$1 want=$2; shift 2
  for _ in $(seq 1 100); do [[ $("$@") == "$want" ]] && { echo "step $step: $want as documented"; return 0; }; sleep 0.05; done
  echo "step $step: expected $want, got $("$@")" >&2; exit 1
}
echo
expect 1 200 code
cp examples/ext-auth/steps/01-gateway-policy.yaml "$RUN/manifests/"
expect 2 403 code
curl -si "$url" -H "host: www.example.com" | grep -i '^x-ext-authz-check-result: denied' || { echo "step 2: verdict header missing" >&2; exit 1; }
expect 3 200 code -H "x-ext-authz: allow"
curl -s "$url" -H "host: www.example.com" -H "x-ext-authz: allow" | grep -o '"X-Ext-Authz-Check-Result":\["allowed"\]' || { echo "step 3: backend did not see the verdict" >&2; exit 1; }
cp examples/ext-auth/steps/02-route-disable.yaml "$RUN/manifests/"
expect 4 200 code
if curl -s "$url" -H "host: www.example.com" | grep -q 'X-Ext-Authz-Check-Result'; then echo "step 4: auth still ran" >&2; exit 1; fi
https=https://www.example.com:$HTTPS_PORT/headers
tls_code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$RUN/www.example.com.crt" \
  --resolve "www.example.com:$HTTPS_PORT:127.0.0.1" "$https" "$@"; }
cp examples/ext-auth/steps/03-https-listener.yaml "$RUN/manifests/gateway.yaml"
rm "$RUN/manifests/02-route-disable.yaml"
expect 5 403 tls_code
expect 5 200 tls_code -H "x-ext-authz: allow"
echo "walkthrough replayed: every step behaves as the guide shows"
