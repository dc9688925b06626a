"""The kernel side of claude-nb: what runs only inside an IPython kernel or session.

Claude that sees the kernel: `%claude fix` (fix.py), `{In[n]}`/`{Out[n]}`/`{Err[n]}` references
(references.py), Python functions as tools (tools.py, tool_loop.py) and the agent that works on
the live namespace through tools the kernel answers itself (notebook_tools.py, approval.py,
agent.py), with credentials kept in the kernel (credentials.py).
"""
