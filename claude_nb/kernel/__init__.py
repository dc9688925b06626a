"""The kernel side: what a notebook or script imports. The client and its transports, the
`%%claude` magics, display, the chat widget, DataFrame batch jobs and reports, the quota view."""
