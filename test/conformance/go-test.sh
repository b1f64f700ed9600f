#!/usr/bin/env bash
# Runs the Go conformance harness by hand, e.g.
#   CONTENTD_MODE=containerd CONTENTD_ADDRESS=/run/containerd/containerd.sock test/conformance/go-test.sh
#   CONTENTD_MODE=global CONTENTD_SERVER_CMD="node $PWD/dist/src/cli/main.js serve" test/conformance/go-test.sh -run 'TestContent/Writer$'
# go test runs the binary in the package directory: use absolute paths.
# Environment variables are documented in src/contentd.local/conformance/conformance_test.go.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export GO111MODULE=off GOFLAGS= GOPATH="$here:/usr/share/gocode" GOCACHE="${GOCACHE:-$here/../../.go-cache}"
exec go test -count=1 -v contentd.local/conformance "$@"
