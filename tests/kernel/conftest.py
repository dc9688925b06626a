"""Fixtures the kernel-side tests share."""
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


@pytest.fixture
def make_shell(local):
    """make(**ClaudeMagics traits) -> a fresh IPython shell with the extension loaded, answered
    in-process by the real CLI against the fake upstream; each is unloaded and closed after."""
    shells = []

    def make(**config):
        # the singleton: IPython's display() publishes through InteractiveShell.instance()
        InteractiveShell.clear_instance()
        cfg = Config()
        for key, value in config.items():
            setattr(cfg.ClaudeMagics, key, value)
        shell = InteractiveShell.instance(config=cfg)
        shell.extension_manager.load_extension("claude_nb")
        shells.append(shell)
        return shell
    yield make
    for shell in shells:
        shell.extension_manager.unload_extension("claude_nb")
        shell.history_manager.end_session()
        shell.clear_instance()
