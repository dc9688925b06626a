#!/usr/bin/env bash
# Runs the test suite on a fresh machine: makes .venv, installs the project with its test
# extras, installs the real Claude Code CLI (exact versions, from npm) under tests/cli, installs
# Debian's Chromium for tests/browser (as root, or with password-less sudo), runs pytest.
#
#   ./scripts/test.sh [pytest args]            the supported CLI window: the whole suite on the
#                                              newest tested CLI (tests/cli/package.json), then
#                                              the bridge, fidelity and reliability tests on the
#                                              oldest supported one (tests/cli/oldest/)
#   ./scripts/test.sh --cli VERSION [args]     the whole suite (or the pytest args) on one CLI:
#                                              an exact version, `latest` (the registry's
#                                              newest today), `newest` or `oldest` (the window)
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests that must pass on every CLI of the window (the bridge and what it promises).
WINDOW_TESTS=(tests/bridge tests/reliability)

cli=window
if [ "${1:-}" = "--cli" ]; then
  [ -n "${2:-}" ] || { echo "usage: $0 [--cli VERSION|latest|newest|oldest] [pytest args]" >&2; exit 2; }
  cli=$2
  shift 2
fi

. scripts/venv.sh
.venv/bin/python -m pip install --quiet -e ".[test]"

if [ ! -x /usr/bin/chromium ] && [ -z "${CLAUDE_NB_CHROMIUM:-}" ] && command -v apt-get >/dev/null; then
  # Playwright's own browser download is out of reach: tests/browser drive this Chromium.
  sudo=()
  [ "$(id -u)" = "0" ] || sudo=(sudo -n)
  echo "claude-nb tests: installing Chromium for tests/browser (apt-get)" >&2
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
  if ! { "${apt[@]}" update && "${apt[@]}" install -y chromium; } >&2; then
    echo "claude-nb tests: Chromium could not be installed; tests/browser will be skipped" >&2
  fi
fi

pinned() {   # the version a tests/cli package.json asks for
  .venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@anthropic-ai/claude-code"])' "$1"
}

# install_cli DIR VERSION: the exact CLI version into DIR; prints the executable's path.
install_cli() {
  local dir version=$2 exe
  dir=$(mkdir -p "$1" && cd "$1" && pwd)    # absolute: the CLI runs from other directories
  exe="$dir/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
  [ -x "$exe" ] || exe="$dir/node_modules/.bin/claude"
  if [ ! -x "$exe" ] || ! "$exe" --version 2>/dev/null | grep -q "^$version "; then
    if [ ! -f "$dir/package.json" ]; then
      printf '{"name":"claude-nb-test-cli","private":true,"dependencies":{"@anthropic-ai/claude-code":"%s"}}\n' \
        "$version" > "$dir/package.json"
    fi
    (cd "$dir" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >&2)
    exe="$dir/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
    [ -x "$exe" ] || exe="$dir/node_modules/.bin/claude"
  fi
  # npm can hand out a cached older release: check what was installed.
  if ! "$exe" --version | grep -q "^$version "; then
    echo "claude-nb tests: asked npm for Claude Code $version, got: $("$exe" --version)" >&2
    exit 1
  fi
  echo "$exe"
}

run_on() {   # run_on EXE pytest-args...
  local exe=$1; shift
  echo "== Claude Code $("$exe" --version | cut -d' ' -f1): pytest $*" >&2
  CLAUDE_NB_TEST_CLI=$exe .venv/bin/python -m pytest "$@"
}

newest=$(pinned tests/cli/package.json)
oldest=$(pinned tests/cli/oldest/package.json)
case "$cli" in
  window)
    newest_exe=$(install_cli tests/cli "$newest")
    oldest_exe=$(install_cli tests/cli/oldest "$oldest")
    status=0
    run_on "$newest_exe" "$@" || status=$?
    run_on "$oldest_exe" "${WINDOW_TESTS[@]}" "$@" || { s=$?; [ $status -ne 0 ] || status=$s; }
    exit $status ;;
  newest) exe=$(install_cli tests/cli "$newest") ;;
  oldest) exe=$(install_cli tests/cli/oldest "$oldest") ;;
  latest)
    version=$(npm view @anthropic-ai/claude-code version)
    exe=$(install_cli "tests/cli/versions/$version" "$version") ;;
  *) exe=$(install_cli "tests/cli/versions/$cli" "$cli") ;;
esac
run_on "$exe" "$@"
