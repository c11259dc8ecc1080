#!/usr/bin/env bash
# Install everything safetybot needs on a fresh Debian/Ubuntu machine (also used by CI and the Dockerfile).
#   scripts/setup.sh            system packages (CJK font, tzdata) + .venv with the bot
#   scripts/setup.sh --test     also the test tools (pytest, Playwright), Debian's Chromium and libfaketime
#   scripts/setup.sh --system-only   only the system packages (the Dockerfile's first layer)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
SYSTEM_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    --system-only) SYSTEM_ONLY=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

packages=(fonts-noto-cjk tzdata ca-certificates)
if [ "$WITH_TEST" = 1 ]; then
  packages+=(chromium faketime)  # faketime: CI's second run with the wall clock moved ahead
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: no apt-get; please install ${missing[*]} yourself" >&2
  fi
fi
[ "$SYSTEM_ONLY" = 1 ] && exit 0

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "$WITH_TEST" = 1 ]; then
  "$VENV/bin/python" -m pip install -q -e ".[test]"
else
  "$VENV/bin/python" -m pip install -q -e .
fi
echo "ready: $VENV/bin/safetybot"
