#!/usr/bin/env bash
# Installs what qplay needs to build and test, skipping what is already there.
# Debian/Ubuntu packages via apt, JavaScript packages (ONNX Runtime oracle) via npm.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config git python3
  libonnx-dev libprotobuf-dev protobuf-compiler
  libcli11-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev libstb-dev
  libeigen3-dev libdnnl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libonnx-testdata
  chromium
)
# Node.js may come from Debian (nodejs + npm) or from a vendor build that bundles npm;
# ask apt only for what is really missing.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages: onnxruntime-node (test oracle), preact, htm, plotly.js-dist-min and
# @dagrejs/dagre (the web UI, copied to build/web/vendor by cmake/web.cmake), playwright-core
# (the browser test, driving Debian's chromium). onnxruntime-node ships its CPU library inside
# the package; its install script would download more, so scripts are skipped.
for m in onnxruntime-node preact htm plotly.js-dist-min @dagrejs/dagre playwright-core; do
  if [ ! -d "node_modules/$m" ]; then
    npm install --ignore-scripts --no-audit --no-fund
    break
  fi
done
