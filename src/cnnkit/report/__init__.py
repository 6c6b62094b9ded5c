"""Reports: training plots (PNG) and the self-contained HTML run report."""
