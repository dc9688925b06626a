"""The kernel side: what runs in a notebook (DataFrame accessor, estimates, charts)."""
