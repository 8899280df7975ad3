#!/usr/bin/env bash
# Installs Debian's bubblewrap (the sandbox for model-written code), chromium (for Playwright, headless)
# and postgresql (for the PostgreSQL memory tests) when they are missing. Tests that need them skip with
# a clear reason if this could not install them; without bwrap the sandbox falls back to a weaker
# isolation and says so (`seasoned envs list`).
set -u
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo ">>> not root or no apt-get: not installing ${need[*]} (the tests that need them will be skipped)"
  exit 0
fi
echo ">>> installing system packages: ${need[*]} (Debian, once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/seasoned-apt.log 2>&1 \
  || echo ">>> apt-get install ${need[*]} failed (see /tmp/seasoned-apt.log); dependent tests will be skipped"
exit 0
