"""Test helpers: capture writer and reference decoder (pure Python, no tcpsift imports)."""
