"""Verification stage: control CT -> registration -> instrument -> deviation from the plan; post-op accuracy.

Plain data in and out; imports nothing from ``export``, ``views``, ``web`` or a face (design.md). Modules:

``synth``       synthetic control CTs with a known instrument and patient motion (ground truth)
``register``    rigid bone-driven registration local to the target, quality figure, refusals
``instrument``  metal instrument as a 3D segment with its tip
``deviation``   figures against the plan, clearances of the actual line, correction
``postop``      screw entry/tip/angle errors, breach and its (adapted Gertzbein-Robbins) grade
``pipeline``    :func:`verify_control`, what the faces call
"""

from osteoplan.verification.instrument import Instrument, detect_instruments
from osteoplan.verification.pipeline import (STAGES, NoInstrument, NoInstrumentTip, SeveralInstruments,
                                            verify_control)
from osteoplan.verification.register import (Registration, RegistrationRefused, VerificationError,
                                              register_control)

__all__ = ["Instrument", "NoInstrument", "NoInstrumentTip", "Registration", "RegistrationRefused", "STAGES",
           "SeveralInstruments", "VerificationError", "detect_instruments", "register_control", "verify_control"]
