"""osteoplan.export (see docs/design)."""
