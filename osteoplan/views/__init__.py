"""osteoplan.views (see docs/design)."""
