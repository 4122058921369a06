"""Training of the detector: synthetic data, COCO data, targets, loss, loop, evaluation.

Everything here except the pure data modules needs torch (the ``train`` extra).
"""
