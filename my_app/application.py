"""The Flask class the factory builds."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from types import FunctionType, MethodType
from typing import Any

import flask


class Flask(flask.Flask):
    """Flask, remembering which view functions are coroutines.

    Flask asks ``inspect`` whether the view is a coroutine function on every request, and
    flask-smorest asks again for each decorator layer: five to seven times a submission,
    a dozen Python calls each, for an answer that never changes for a function.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` itself if it is synchronous, else wrapped to run to completion."""
        if isinstance(func, MethodType):  # a MethodView's bound method, made per request
            is_coroutine = is_coroutine_function(func.__func__)
        elif isinstance(func, FunctionType):
            is_coroutine = is_coroutine_function(func)
        else:  # partials and other callables: ask every time, as Flask does
            return super().ensure_sync(func)
        return self.async_to_sync(func) if is_coroutine else func


@cache
def is_coroutine_function(func: FunctionType) -> bool:
    """Whether ``func`` is an ``async def`` function.

    Views and decorator layers are made at import and when an app is built, so the cache
    holds a few entries per app.
    """
    return inspect.iscoroutinefunction(func)
