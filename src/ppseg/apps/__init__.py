"""Applications built on ppseg models (torch-free where the model is an exported ONNX file).

* :mod:`ppseg.apps.humanseg`: person masks, alpha mattes and background replacement for
  images, videos and webcams, with optical-flow temporal stabilisation (``ppseg humanseg``).
"""
