"""Applications built on ppseg models (torch-free where the model is an exported ONNX file).

* :mod:`ppseg.apps.humanseg`: person masks, alpha mattes and background replacement for
  images, videos and webcams, with optical-flow temporal stabilisation (``ppseg humanseg``).

Shared by the apps (import the submodule you need; nothing is imported here):

* :mod:`ppseg.apps.media`: sources (images, folders, videos, webcams) and sinks (videos, images), progress.
* :mod:`ppseg.apps.compositing`: backgrounds (colour, image, blur) and alpha compositing.
* :mod:`ppseg.apps.stabilize`: optical-flow temporal stabilisation and a flicker measure.
"""
