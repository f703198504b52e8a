"""Reports: a self-contained report.html with image grids, metric tables and plots."""
