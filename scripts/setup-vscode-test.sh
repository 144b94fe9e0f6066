#!/usr/bin/env bash
# Installs what the vscode test tier needs, into .vscode-test/ (git-ignored), idempotently:
#   .vscode-test/node24        Node 24 from the npm package `node` (code-server 4.139 needs Node 24)
#   .vscode-test/code-server   code-server (the VS Code OSS server + web workbench), installed with that Node 24
# Chromium (the browser that runs the workbench) comes from the system: scripts/setup-system.sh --tests.
# Writes the paths it settled on to .vscode-test/env.json (read by test/vscode/launcher.mjs).
set -euo pipefail

NODE_VERSION="${BASIN_TEST_NODE_VERSION:-24.21.0}"
CODE_SERVER_VERSION="${BASIN_CODE_SERVER_VERSION:-4.139.1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$root/.vscode-test"
node_dir="$base/node24"
cs_dir="$base/code-server"
mkdir -p "$base"

log() { printf '[setup-vscode-test] %s\n' "$*"; }

# Under `npm test` the outer npm (Node 20) exports npm_* variables; the inner npm would take them as its own config
# (npm_config_user_agent says "node/v20", and code-server's postinstall refuses to run on that). Start clean.
for name in $(compgen -e); do
  case "$name" in npm_* | NPM_*) unset "$name" ;; esac
done
unset NODE INIT_CWD

# The `node` package installs `node-<platform>-<arch>` next to it; that folder is a whole Node distribution
# (bin/node, bin/npm, include/node for node-gyp).
find_node_pkg() {
  local d
  for d in "$node_dir"/node_modules/node/node_modules/node-*-* "$node_dir"/node_modules/node-*-*; do
    if [ -x "$d/bin/node" ]; then echo "$d"; return 0; fi
  done
  return 1
}

node_pkg="$(find_node_pkg || true)"
if [ -n "$node_pkg" ] && [ "$("$node_pkg/bin/node" --version)" = "v$NODE_VERSION" ]; then
  log "Node $NODE_VERSION already installed"
else
  log "installing node@$NODE_VERSION into $node_dir"
  t0=$SECONDS
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  printf '{ "name": "basin-test-node24", "private": true }\n' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --no-save --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" >/dev/null)
  node_pkg="$(find_node_pkg)" || { echo "node@$NODE_VERSION installed no Node binary under $node_dir" >&2; exit 1; }
  log "Node $("$node_pkg/bin/node" --version) installed in $((SECONDS - t0)) s"
fi
node24="$node_pkg/bin/node"

# npm of Node 24's own distribution when present, else this machine's npm run under Node 24.
npm_cli="$node_pkg/lib/node_modules/npm/bin/npm-cli.js"
if [ ! -f "$npm_cli" ]; then
  npm_cli="$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js"
fi

marker="$cs_dir/.basin-installed-$CODE_SERVER_VERSION-node$NODE_VERSION"
if [ -f "$marker" ] && [ -f "$cs_dir/node_modules/code-server/out/node/entry.js" ]; then
  log "code-server $CODE_SERVER_VERSION already installed"
else
  if ! pkg-config --exists krb5-gssapi 2>/dev/null && [ ! -f /usr/include/gssapi/gssapi.h ]; then
    echo "code-server's native module 'kerberos' needs libkrb5-dev: run 'bash scripts/setup-system.sh --tests' (as root)" >&2
    exit 1
  fi
  log "installing code-server@$CODE_SERVER_VERSION with Node $NODE_VERSION (compiles native modules, ~2-3 min)"
  t0=$SECONDS
  rm -rf "$cs_dir"
  mkdir -p "$cs_dir"
  printf '{ "name": "basin-test-code-server", "private": true }\n' > "$cs_dir/package.json"
  # Everything (npm, its lifecycle scripts, node-gyp) runs under Node 24 and builds against Node 24's headers:
  # the machine's npmrc may point node-gyp at another Node's headers (nodedir).
  (
    cd "$cs_dir"
    export PATH="$node_pkg/bin:$PATH"
    export npm_config_nodedir="$node_pkg"
    export npm_config_update_notifier=false
    "$node24" "$npm_cli" install --no-save --no-audit --no-fund --loglevel=error --unsafe-perm \
      "code-server@$CODE_SERVER_VERSION" > "$base/code-server-install.log" 2>&1
  ) || { echo "code-server install failed; the last lines of $base/code-server-install.log:" >&2; tail -40 "$base/code-server-install.log" >&2; exit 1; }
  [ -f "$cs_dir/node_modules/code-server/out/node/entry.js" ] || { echo "code-server installed no out/node/entry.js" >&2; exit 1; }
  touch "$marker"
  log "code-server installed in $((SECONDS - t0)) s"
fi

cat > "$base/env.json" <<EOF
{ "node": "$node24", "codeServer": "$cs_dir/node_modules/code-server", "nodeVersion": "$NODE_VERSION", "codeServerVersion": "$CODE_SERVER_VERSION" }
EOF
log "ready: $base/env.json"
