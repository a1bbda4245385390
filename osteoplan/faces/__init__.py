"""osteoplan.faces: the thin faces over the engine (design.md): the command line (:mod:`osteoplan.faces.cli`).

The engine packages (imaging, anatomy, risk, planning) never import a face, ``export`` or ``views``; a face may
import all of them.
"""
