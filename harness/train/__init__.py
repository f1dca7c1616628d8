"""Training: the one loop every training-time method goes through (``fit``), baseline training and
top-1 evaluation (``classifier``) and the on-disk cache of trained baseline weights
(``weight_cache``)."""
