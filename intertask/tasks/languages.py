"""Language lists of the benchmarks, in one table (ISO 639-1 codes, English first).

Sources: XTREME (Hu et al. 2020, arXiv 2003.11080, Table 1 and the xtreme repo's task scripts) and
XTREME-R (Ruder et al. 2021, arXiv 2104.07412).
"""

from __future__ import annotations


def _langs(codes: str) -> tuple[str, ...]:
    items = codes.split()
    return tuple(["en"] + sorted(c for c in items if c != "en")) if "en" in items else tuple(sorted(items))


XNLI = _langs("en ar bg de el es fr hi ru sw th tr ur vi zh")
PAWSX = _langs("en de es fr ja ko zh")
UDPOS = _langs("en af ar bg de el es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo zh")
PANX = _langs(
    "en af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw ta te th tl tr ur vi yo zh"
)
XQUAD = _langs("en ar de el es hi ru th tr vi zh")
MLQA = _langs("en ar de es hi vi zh")
TYDIQA = _langs("en ar bn fi id ko ru sw te")
BUCC = _langs("de fr ru zh")
TATOEBA = _langs(
    "af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr nl pt ru sw ta te th tl tr ur vi zh uk"
)
XCOPA = _langs("en et ht id it qu sw ta th tr vi zh")

# LASER's Tatoeba files use ISO 639-3 codes (tatoeba.rus-eng.rus).
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn", "uk": "ukr",
}  # fmt: skip

# --------------------------------------------------------------------------------------------------------------
# XTREME-R (Ruder et al. 2021): the official language lists, from google-research/xtreme evaluate.py
# (XTREME_R_TASK2LANGS) and scripts/download_data.sh. XTREME-R drops PAWS-X and BUCC, adds XCOPA, LAReQA and
# Mewsli-X, and adds languages to UD-POS, PAN-X, Tatoeba and XQuAD.
# --------------------------------------------------------------------------------------------------------------

UDPOS_XTREME_R = _langs(" ".join(UDPOS) + " lt pl uk wo ro")
PANX_XTREME_R = _langs(" ".join(PANX) + " qu pl uk az lt pa gu ro")
TATOEBA_XTREME = tuple(c for c in TATOEBA if c != "uk")  # XTREME's 36 (uk came with the XTREME-R list)
TATOEBA_XTREME_R = _langs(" ".join(TATOEBA_XTREME) + " az lt pl uk ro")
XQUAD_XTREME_R = _langs(" ".join(XQUAD) + " ro")
# LAReQA = XQuAD-R (the 11 XQuAD languages; every question retrieves from the pooled 11-language candidates).
LAREQA = _langs("en ar de el es hi ru th tr vi zh")
MEWSLIX = _langs("en ar de es fa ja pl ro ta tr uk")

# Tatoeba files of the XTREME-R additions (LASER v1 names).
TATOEBA_CODES.update({"az": "aze", "lt": "lit", "pl": "pol", "ro": "ron"})

# google/xtreme names its udpos configs by English language name ("udpos.Russian").
UDPOS_HUB_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
    "lt": "Lithuanian", "pl": "Polish", "uk": "Ukrainian", "wo": "Wolof", "ro": "Romanian",
}  # fmt: skip

# Which languages each benchmark evaluates, per task (the task records hold the union).
BENCHMARK_LANGUAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "xtreme": {
        "xnli": XNLI, "pawsx": PAWSX, "udpos": UDPOS, "panx": PANX, "xquad": XQUAD, "mlqa": MLQA,
        "tydiqa": TYDIQA, "bucc": BUCC, "tatoeba": TATOEBA_XTREME,
    },
    "xtreme-r": {
        "xnli": XNLI, "xcopa": tuple(c for c in XCOPA if c != "en"), "udpos": UDPOS_XTREME_R,
        "panx": PANX_XTREME_R, "xquad": XQUAD_XTREME_R, "mlqa": MLQA, "tydiqa": TYDIQA,
        "tatoeba": TATOEBA_XTREME_R, "mewslix": MEWSLIX, "lareqa": LAREQA,
    },
}  # fmt: skip


def benchmark_languages(task: str, benchmark: str) -> tuple[str, ...]:
    """The languages `benchmark` ("xtreme" or "xtreme-r") evaluates for `task` (empty if not part of it)."""
    from intertask.errors import ConfigError, unknown_name_message

    if benchmark not in BENCHMARK_LANGUAGES:
        raise ConfigError(unknown_name_message("benchmark", benchmark, BENCHMARK_LANGUAGES))
    return BENCHMARK_LANGUAGES[benchmark].get(task, ())
