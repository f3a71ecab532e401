"""PageSpeed Insights v5: client, results and quota."""
