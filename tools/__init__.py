"""Developer tools (not imported by the app, engine, models or training)."""
