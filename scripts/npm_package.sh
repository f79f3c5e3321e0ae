#!/usr/bin/env bash
# Builds the library to per-module JavaScript plus .d.ts (the shape JSR serves
# to npm clients), packs it with npm pack, installs it into a scratch project
# and runs a consumer test there on the machine's Node and on Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=.ci/out/npm
rm -rf "$out"
./node_modules/.bin/tsc -p tsconfig.build.json
version=$(./node_modules/.bin/node -p 'require("./deno.json").version')
logtape=$(./node_modules/.bin/node -p 'require("./package.json").dependencies["@logtape/logtape"]')
cat > "$out/package.json" <<JSON
{
  "name": "@molecule/heartbeat",
  "version": "$version",
  "description": "Keeps external agent workspaces alive on a Molecule platform",
  "license": "MIT",
  "type": "module",
  "engines": { "node": ">=20" },
  "exports": {
    ".": { "types": "./dist/mod.d.ts", "default": "./dist/mod.js" },
    "./testing": { "types": "./dist/src/platform_emulator.d.ts", "default": "./dist/src/platform_emulator.js" },
    "./node": { "types": "./dist/src/file_system_node.d.ts", "default": "./dist/src/file_system_node.js" }
  },
  "dependencies": { "@logtape/logtape": "$logtape" }
}
JSON
cp README.md LICENSE "$out/"
(cd "$out" && npm pack --silent >/dev/null)
tarball=$(ls "$out"/*.tgz)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp scripts/npm_consumer_test.mjs "$scratch/consumer.test.mjs"
(cd "$scratch" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "$root/$tarball" >/dev/null)
for node in /usr/bin/node "$root/node_modules/.bin/node"; do
  [ -x "$node" ] || { echo "npm package on $node: SKIPPED (not installed)"; continue; }
  echo "npm package on $("$node" --version):"
  (cd "$scratch" && "$node" --test consumer.test.mjs)
done
