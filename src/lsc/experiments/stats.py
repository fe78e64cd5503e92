"""The experiments' verdict rule is lsc's paired statistics, :mod:`lsc.stats` (one copy;
named here too because reports and notes cite ``lsc.experiments.stats``)."""

from ..stats import HEADER, LEVEL, MIN_PAIRS, RULE, Paired, paired, paired_interval, sign_test, t_quantile, trend

__all__ = [
    "HEADER",
    "LEVEL",
    "MIN_PAIRS",
    "RULE",
    "Paired",
    "paired",
    "paired_interval",
    "sign_test",
    "t_quantile",
    "trend",
]
