#!/usr/bin/env bash
# Starts JupyterLab with the claude-nb extension and opens the quickstart notebook.
# Uses your own Claude Code login: `claude` must be installed and logged in.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/python -m pip install --quiet ".[notebook]"     # JupyterLab, Notebook, matplotlib (the report charts)
if ! command -v claude >/dev/null 2>&1 && [ -z "${CLAUDE_NB_CLI:-}" ]; then
  echo "claude-nb: the Claude Code CLI was not found on PATH." >&2
  echo "  Install it: npm install -g @anthropic-ai/claude-code   then run \`claude\` once to log in." >&2
  echo "  (Or point CLAUDE_NB_CLI at the executable.) Starting Jupyter anyway; /health will say so." >&2
fi
extra=()
[ "$(id -u)" = "0" ] && extra+=(--allow-root)
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb "${extra[@]}" "$@"
