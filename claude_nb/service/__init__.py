"""Server-side state shared by the Jupyter extension and the in-process transport."""
