#!/usr/bin/env bash
# Installs the Debian packages the build and the tests use, where they are missing. Idempotent.
#   tools/system_deps.sh data   dataset-fashion-mnist: the real Fashion-MNIST (optional: without it,
#                               and without the files in the data folder, chapters and assignment 2
#                               run on the labelled stand-in and say so)
#   tools/system_deps.sh test   the above, plus chromium (headless browser check of the built book)
#                               and bubblewrap (the autograder's sandbox), which the tests need
set -euo pipefail
group=${1:-test}
need=() optional=()
[ -d "${VITCOURSE_SYSTEM_DATA-/usr/share/datasets}/fashion-mnist" ] || optional+=(dataset-fashion-mnist)
if [ "$group" = test ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
fi
all=("${need[@]}" "${optional[@]}")
[ ${#all[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  if [ ${#optional[@]} -gt 0 ]; then
    echo "The real Fashion-MNIST is not installed: the chapters and assignment 2 will use the labelled" >&2
    echo "stand-in 'synthetic-fashion' (every result says so). To use the real data, run either" >&2
    echo "  sudo apt-get install -y dataset-fashion-mnist     (Debian/Ubuntu)" >&2
    echo "  .venv/bin/python -m vitcourse.data fetch fashion-mnist     (with internet access)" >&2
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "Missing Debian packages: ${need[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  exit 0
fi
echo "Installing Debian packages: ${all[*]}"
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
install "${all[@]}" 2>/dev/null || { apt-get update -qq && install "${need[@]}"; }
if [ ${#optional[@]} -gt 0 ] && ! install "${optional[@]}"; then
  echo "Could not install ${optional[*]}: the chapters and assignment 2 will use the stand-in." >&2
fi
