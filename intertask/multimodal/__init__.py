"""Multimodal intermediate tasks (image captioning, VQA) with controls; only the text encoder transfers.

Modules: ``images`` (image folders, synthetic shapes), ``vision`` (frozen vision encoders, feature
cache, precomputed features), ``models`` (captioning / VQA models), ``metrics`` (recall@K, VQA
accuracy), ``tasks`` (task records), ``stage`` (the intermediate stage runner). See docs/multimodal.md.
"""
