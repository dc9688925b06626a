"""Server-side state, the same whether the Jupyter extension or a kernel without a server owns
it: the SQLite store, message batches and their runner, files, usage/cost reports and the
plan-quota tracker. Imports no tornado, jupyter_server, IPython, ipywidgets or pandas."""
