"""claude-nb: Claude from Jupyter through the Claude Code CLI.

The core (protocol, bridge, store) and the IPython side. Importing this package never imports
tornado or jupyter_server, so it works in any kernel.
"""
__version__ = "0.1.0"
