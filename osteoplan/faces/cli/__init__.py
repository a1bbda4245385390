"""Command-line modules of the faces, one per command group: :mod:`.plan` (``plan``, ``demo``) and :mod:`.risk`
(``risk``). They format engine results with :mod:`osteoplan.export` and :mod:`osteoplan.views`, which the engine
packages themselves must not import. Registered in :data:`osteoplan.cli.COMMAND_MODULES`."""
