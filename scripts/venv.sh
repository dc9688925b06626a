# Sourced by run.sh and test.sh: the project's .venv (made with $PYTHON or python3), pip current.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
