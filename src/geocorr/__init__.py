"""geocorr: geometry-aware semantic correspondence.

>>> import geocorr
>>> model = geocorr.load("geco")                      # DINOv2-B/14 + the released GECO LoRA
>>> matches = model.match(img0, img1, points=[[120, 80]])
>>> matches.points, matches.scores                     # (N, 2) target pixels, (N,) similarities
"""
from .images import load_image
from .methods import METHODS, load

__version__ = "0.1.0"
__all__ = ["METHODS", "__version__", "load", "load_image"]
