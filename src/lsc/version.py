"""The version of lsc, on the ground floor so that any module may read it (docs/design.md section 0)."""

__version__ = "0.1.0"
