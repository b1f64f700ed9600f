#!/usr/bin/env bash
# Fails when generated/ differs from what `npm run generate` produces.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent generate
if ! git diff --exit-code --stat -- generated || [ -n "$(git status --porcelain -- generated)" ]; then
  echo "generated/ is out of date: run npm run generate and commit the result" >&2
  exit 1
fi
