"""Where the kernel side's requests go: `HttpTransport` (the Jupyter server) or
`InProcessTransport` (the service in this process), behind the one `Transport` interface."""
from .base import Transport  # noqa: F401
from .discover import connect, default_transport, discover_transport  # noqa: F401
from .http import HttpTransport  # noqa: F401
from .inprocess import InProcessTransport  # noqa: F401
