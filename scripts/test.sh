#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing
# (Debian's etcd-server for the etcd interop tests, curl for the demo test,
# Python's etcd3gw for the etcd watch test and grpcio for the black-box case
# run; checks for Node.js 20 and npm, which the connect-es test needs), then
# runs the whole suite:
# cargo test, and the real-world cases against the built binary with a
# Python gRPC backend we did not write. Fails, never skips, when something
# cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "test.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test.sh: missing ${need[*]}; install with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# Node.js 20+ and npm for the connect-es interop test (tests/connect_es.rs
# runs `npm ci` in tests/connect_es itself). Not installed here: Debian 12's
# own nodejs is 18, too old for connect-es 2; the machines come with 20.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
case "$node_major" in '' | *[!0-9]*) node_major=0 ;; esac
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: the connect-es interop test needs Node.js 20 or newer with npm; found node $(node --version 2>/dev/null || echo none), npm $(npm --version 2>/dev/null || echo none)" >&2
  exit 1
fi

# Python packages, before cargo test: etcd3gw for the etcd watch test,
# grpcio and friends for the black-box case run below.
python_deps=(grpcio grpcio-tools grpcio-reflection grpcio-health-checking grpcio-status googleapis-common-protos etcd3gw)
if ! python3 -c "import grpc, grpc_tools, grpc_reflection, grpc_health, grpc_status, google.rpc, etcd3gw" 2>/dev/null; then
  echo "test.sh: installing ${python_deps[*]}" >&2
  python3 -m pip install --quiet "${python_deps[@]}"
fi

cargo test --locked "$@"

# The cases again, from outside: the built binary in front of the Python
# echo backend (grpcio), as an outside harness would run them.
cargo build --locked --quiet
python3 tests/harness/run_cases.py --gateway-bin target/debug/protogate --cases tests/cases
