"""Image matting, the alpha-matte task: its metrics (SAD, MSE, Grad, Conn as PaddleSeg's
Matting defines them) first.

The modules here use numpy and OpenCV only; importing this package (or
:mod:`ppseg.matting.metrics`) does not import torch.
"""
