"""osteoplan.web (see docs/design)."""
