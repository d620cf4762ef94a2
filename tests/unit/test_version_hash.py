"""The default workflow version hashes what decides what a run does: a decorator's
arguments, the docstring, comments and layout do not move runs to a new version; a
change to the body does."""

from __future__ import annotations

from statekeeper.workflows.versions import _code_shape, code_version

BASE = '''
@app.workflow(retention=10)
async def order(ctx, item):
    """Charge, then ship."""
    paid = await ctx.step(charge, item)
    return paid
'''

SAME = '''
@app.schedule("*/5 * * * *")
@app.workflow(retention=20)
async def order(ctx, item):
    """Charge, then ship (and say so differently)."""
    # a comment
    paid = await ctx.step(charge,
                          item)
    return paid
'''

CHANGED = '''
@app.workflow(retention=10)
async def order(ctx, item):
    """Charge, then ship."""
    paid = await ctx.step(charge, item, retry=3)
    return paid
'''


def test_decorators_docstrings_comments_and_layout_keep_the_version() -> None:
    assert _code_shape(BASE) == _code_shape(SAME)


def test_a_change_to_the_body_is_a_new_version() -> None:
    assert _code_shape(BASE) != _code_shape(CHANGED)


def test_an_indented_method_is_hashed_like_a_function() -> None:
    indented = "\n".join("    " + line for line in BASE.splitlines())
    assert _code_shape(indented) == _code_shape(BASE)


async def _flow(ctx: object, item: object) -> object:
    return item


def test_the_version_names_the_workflow_and_hashes_its_code() -> None:
    version = code_version("flow", _flow)
    assert version.startswith("code-") and len(version) == 17
    assert version != code_version("other", _flow)
