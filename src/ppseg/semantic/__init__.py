"""Semantic segmentation, the first task: the segmentor (normalisation, inference modes,
test-time augmentation, VIM), its metrics, evaluation, the prediction writer and the
:class:`~ppseg.semantic.task.SemanticTask` the trainer runs.

Import the submodules (``ppseg.semantic.segmentor`` ...); this package imports nothing
heavy itself.
"""
