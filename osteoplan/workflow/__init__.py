"""osteoplan.workflow (see docs/design)."""
