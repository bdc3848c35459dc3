"""Multimodal intermediate tasks (image captioning, VQA) with controls; only the text encoder transfers.

Modules: ``images`` (image folders, synthetic shapes), ``vision`` (frozen vision encoders, feature
cache, precomputed features), ``models`` (captioning / VQA models), ``metrics`` (recall@K, VQA
accuracy), ``stage`` (the intermediate stage runner); the task records are in intertask.tasks.multimodal
(``tasks`` re-exports their names). See docs/multimodal.md.
"""
