"""The admin dashboard: cost, latency, cache, feedback and ingestion charts (views.py),
drawn as server-side SVG (charts.py) from chat.selectors.dashboard."""
