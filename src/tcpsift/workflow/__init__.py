"""The engineer's workflow on top of the tables: ladder, plots, report."""
