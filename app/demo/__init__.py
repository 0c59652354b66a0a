"""`arbiter demo`: the whole feedback loop on embedded defaults (see ``app.demo.run``)."""

from app.demo.context import DemoOptions
from app.demo.run import run_demo

__all__ = ["DemoOptions", "run_demo"]
