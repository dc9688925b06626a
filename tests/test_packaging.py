"""`pip install` enables the extension with no further step, and the kernel side stays light."""
import importlib.metadata
import os
import re
import subprocess
import sys

import pytest


def _installed() -> bool:
    try:
        importlib.metadata.distribution("claude-nb")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="claude-nb is not pip-installed here (scripts/test.sh installs it)")
def test_extension_enabled_after_pip_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path)        # no user config can be what enables it
    out = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                         capture_output=True, text=True, env=env, timeout=120)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)   # drop terminal colours
    assert "server_ext enabled" in listing
    assert "server_ext" in listing and "OK" in listing.split("server_ext enabled", 1)[1][:200]


def test_importing_claude_nb_does_not_import_the_server():
    code = ("import sys, claude_nb, claude_nb.bridge, claude_nb.protocol.validation;"
            "bad = [m for m in ('tornado', 'jupyter_server', 'server_ext') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_the_code_is_lint_clean():
    """ruff, as configured in pyproject.toml, finds nothing (so CI checks it with the tests)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", root],
                         capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr


def test_one_version_for_the_package_and_the_build():
    import claude_nb
    from claude_nb._version import __version__
    assert claude_nb.__version__ == __version__
    if _installed():
        assert importlib.metadata.version("claude-nb") == __version__
