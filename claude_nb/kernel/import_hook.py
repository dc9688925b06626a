"""Run a callback once a module has been imported, without importing it ourselves.

`import claude_nb` gives DataFrames their `.claude` accessor, but must not load pandas for
that (the server and the shared core import claude_nb and never need pandas): when pandas is
not loaded yet, the accessor is registered the moment something imports it.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings
from typing import Callable


def after_import(name: str, callback: Callable[[], None]) -> None:
    """callback() now if `name` is imported already, else right after its first import."""
    if name in sys.modules:
        callback()
        return
    sys.meta_path.insert(0, _Watcher(name, callback))


class _Watcher(importlib.abc.MetaPathFinder):
    """Finds `name` through the other finders and runs the callback once its module ran."""

    def __init__(self, name: str, callback: Callable[[], None]):
        self.name = name
        self.callback = callback
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader
        watcher = self

        class _ThenCallback(importlib.abc.Loader):
            def create_module(self, spec):
                return original.create_module(spec)

            def exec_module(self, module):
                try:
                    original.exec_module(module)
                finally:
                    # the module keeps its own loader (resources, reloads)
                    module.__loader__ = original
                    if module.__spec__ is not None:
                        module.__spec__.loader = original
                    if watcher in sys.meta_path:
                        sys.meta_path.remove(watcher)
                try:
                    watcher.callback()
                except Exception as exc:    # the module itself imported fine: keep it
                    warnings.warn(f"claude_nb: after importing {watcher.name}: {exc!r}")

        spec.loader = _ThenCallback()
        return spec
