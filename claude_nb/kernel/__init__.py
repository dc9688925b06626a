"""The kernel side: what a notebook or script imports. The client and its transports, the
`%%claude` magics, display, the chat widget, DataFrame batch jobs and reports,
the df.claude accessor (schemas, estimates, the cache's view, charts), the quota view.

Claude that sees the kernel: `%claude fix` (fix.py), `{In[n]}`/`{Out[n]}`/`{Err[n]}` references
(references.py), Python functions as tools (tools.py, tool_loop.py) and the agent that works on
the live namespace through tools the kernel answers itself (notebook_tools.py, approval.py,
agent.py), with credentials kept in the kernel (credentials.py).
"""
