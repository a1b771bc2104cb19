"""Model merging that streams tensors, knows Gemma 4's structure and reads mergekit-style YAML.

    from sealion.merge import merge
    summary = merge("merge.yaml", "out/merged", dtype="bfloat16")
"""

from .config import MergeConfig, load_config, parse_config
from .methods import METHODS, MethodSpec, merge_tensor
from .run import MergeSummary, merge

__all__ = ["METHODS", "MergeConfig", "MergeSummary", "MethodSpec", "load_config", "merge", "merge_tensor", "parse_config"]
