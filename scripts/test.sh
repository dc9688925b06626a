#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: makes .venv, installs the project with its test
# extras, installs the real Claude Code CLI (pinned, from npm) into tests/cli, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/python -m pip install --quiet -e ".[test]"
if [ ! -e tests/cli/node_modules/@anthropic-ai/claude-code/package.json ]; then
  (cd tests/cli && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
fi
exec .venv/bin/python -m pytest "$@"
