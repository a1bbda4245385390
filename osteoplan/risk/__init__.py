"""osteoplan.risk (see docs/design)."""
