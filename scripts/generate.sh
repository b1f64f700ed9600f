#!/usr/bin/env bash
# Regenerates generated/ from protos/ with ts-proto. The output is committed and
# CI checks it is current (scripts/check-generated.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
rm -rf generated
mkdir -p generated
protoc \
  --plugin=protoc-gen-ts_proto=./node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out=generated \
  --ts_proto_opt=outputServices=grpc-js,env=node,useDate=false,esModuleInterop=true,forceLong=number,oneof=unions \
  -I protos -I /usr/include \
  protos/containerd/services/content/v1/content.proto \
  protos/containerd/services/leases/v1/leases.proto \
  protos/contentd/services/gc/v1/gc.proto
