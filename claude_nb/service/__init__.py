"""Server-side state, the same whether the Jupyter extension or a kernel without a server owns
it: the SQLite store, the result cache, message batches and their runner, files, usage/cost
reports, the plan-quota tracker and the message threads. Imports no tornado, jupyter_server,
IPython, ipywidgets or pandas."""
