"""The multimodal task records live in :mod:`intertask.tasks.multimodal` (one registry for every task);
this module keeps the names the multimodal stage imports."""

from intertask.tasks.multimodal import (  # noqa: F401
    CAPTIONING,
    VQA,
    MultimodalHead,
    MultimodalSpec,
    MultimodalTask,
    caption_pairs,
    load_extra_captions,
    multimodal_spec,
    read_coco_caption_examples,
    read_flickr_caption_examples,
    read_multi30k_caption_examples,
    read_vqa_examples,
    text_task_for,
)

__all__ = ["MultimodalTask", "MultimodalSpec", "multimodal_spec", "caption_pairs", "text_task_for", "load_extra_captions"]
