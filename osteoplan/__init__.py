"""osteoplan: planning and care pathway for percutaneous consolidation of metastatic bone.

Stages (each a subpackage with plain data in and out):
imaging -> anatomy -> risk -> planning -> views/export -> workflow/web.
World coordinates are DICOM patient LPS millimetres everywhere inside the code.
"""

__version__ = "0.1.0"
