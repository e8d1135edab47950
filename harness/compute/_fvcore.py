"""fvcore, imported once without its import-time noise.

fvcore.nn's package __init__ compiles a focal loss with torch.jit.script, which current torch reports as a
FutureWarning on every import; it has nothing to do with counting, so it is silenced here and only here.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.script.*")
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape

__all__ = ["FlopCountAnalysis", "elementwise_flop_counter", "get_shape"]
