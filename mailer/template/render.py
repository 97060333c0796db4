"""One message rendered in the sandbox (:mod:`mailer.template.sandbox`), and where a worker
renders it: strict undefined, HTML autoescaping in the HTML part, CSS inlined, a text part
when none is given, no line over 998 characters.

The subject and the text part are not HTML: they are not escaped.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jinja2 import Template, TemplateError, TemplateNotFound
from jinja2.runtime import Context, EvalContext
from markupsafe import Markup

from mailer.template.content import fold_html, fold_text
from mailer.template.html_output import html_to_text, inline_css
from mailer.template.sandbox import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    RenderError,
    RenderLimitError,
    SliceOver,
    budget,
)
from mailer.template.shapes import MAX_SHAPES, PLAIN_VALUES, DerivedShape

PARTS = ("subject", "html", "text")


class Rendered(NamedTuple):
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template | None
    # no loop, macro, call or costly filter in it or what it extends or includes: a render
    # costs about its output, and a worker runs it on its event loop (render_off_loop)
    straight: bool = False
    # per output shape: the CSS-inlined HTML and the derived text with holes for the values
    _shapes: dict[tuple[str | None, ...], DerivedShape | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def render(self, context: dict[str, Any]) -> Rendered:
        """One message; RenderError (RenderLimitError for a sandbox limit) if it fails."""
        done = self.finish(self.fill(context, MAX_RENDER_SECONDS), slow=True)
        assert done is not None  # noqa: S101 - slow=True always finishes
        return done

    def fill(self, context: dict[str, Any], seconds: float) -> _Filled:
        """The Jinja part, under one budget of ``seconds`` (SliceOver: a short one ran out)."""
        with budget(seconds):
            try:
                # the templates' render functions, without Template.render's copy of the
                # context and its extra generator (errors are turned into RenderError here)
                subject = " ".join("".join(_run(self.subject, context)).split())
                # the layouts' <title> defaults to the subject
                chunks = list(_run(self.html, {"subject": subject, **context}))
                text = "".join(_run(self.text, context)) if self.text is not None else None
            except (RenderError, SliceOver):
                raise
            except TemplateNotFound as exc:
                raise RenderError(f"template error: template {exc.name!r} not found") from exc
            except TemplateError as exc:
                raise RenderError(f"template error: {exc}") from exc
            except RecursionError as exc:
                raise RenderLimitError("recursion limit: the template nests too deep") from exc
            except MemoryError as exc:
                raise RenderLimitError("output limit: the render ran out of memory") from exc
            except Exception as exc:  # noqa: BLE001 - any failure of one recipient's data
                raise RenderError(f"template error: {type(exc).__name__}: {exc}") from exc
        body = "".join(chunks)
        if len(body) > MAX_OUTPUT_CHARS or (text and len(text) > MAX_OUTPUT_CHARS):
            raise RenderLimitError(
                f"output limit: the render produced more than {MAX_OUTPUT_CHARS:,} characters"
            )
        return _Filled(subject, chunks, body, text)

    def finish(self, filled: _Filled, slow: bool) -> Rendered | None:
        """CSS inlined, text part, lines folded. ``slow=False``: only what costs no more
        than filling in a known shape's holes, else None (the rest is work for a thread:
        inscriptis takes ~1 s for 300 KB of HTML)."""
        subject, chunks, body, text = filled
        if not slow and len(body) + len(text or "") > INLINE_CHARS:
            return None
        derived = self._derive(chunks, body, text is None, slow)
        if derived is _SLOW or (derived is None and not slow):
            return None
        if text is not None:
            text = fold_text(text)
        if derived is not None:
            html, derived_text = derived
            return Rendered(subject, html, text or derived_text)
        inlined = inline_css(body)
        return Rendered(
            subject=subject, html=fold_html(inlined), text=text or fold_text(html_to_text(inlined))
        )

    def _derive(self, chunks: list[str], body: str, need_text: bool, slow: bool = True) -> Any:
        """CSS inlining and the text part without parsing this message's HTML.

        A campaign's messages differ only in the values put into one template. Where every
        value is plain (words, no markup characters, so escaping leaves it alone) and sits
        in text or a link, inlining and text conversion act on the template's own HTML
        alone: they are done once per output shape with placeholders for the values, and
        each message only fills them in. Anything else takes the full path; so does a shape
        whose first message came out different from the full path. ``slow=False``: a
        shape not derived yet is not derived now (``_SLOW``).
        """
        values: list[str] = [c for c in chunks if type(c) is Markup]  # escaped {{ }}
        if values and not PLAIN_VALUES.fullmatch("\ue000".join(values)):
            return None
        shape = tuple([None if type(chunk) is Markup else chunk for chunk in chunks])
        try:
            derived = self._shapes[shape]
        except KeyError:
            if len(self._shapes) >= MAX_SHAPES:
                return None
            if not slow:
                return _SLOW  # a new shape is derived once, by the full path: in a thread
            derived = DerivedShape.build(shape)
            if derived is not None:
                full = inline_css(body)
                if derived.fill(values) != (fold_html(full), fold_text(html_to_text(full))):
                    derived = None
            self._shapes[shape] = derived
        if derived is None:
            return None
        return derived.fill(values, need_text)


class _Filled(NamedTuple):
    subject: str
    chunks: list[str]
    body: str
    text: str | None


_SLOW = object()  # a result that needs the slow path


def _run(template: Template, context: dict[str, Any]) -> Any:
    return template.root_render_func(_new_context(template, context))


def _new_context(template: Template, context: dict[str, Any]) -> Context:
    """What ``template.new_context(context)`` gives, without its calls per render: the
    parts that are the same for every render of a template (its autoescaping, its globals'
    names) are worked out once; each render still gets fresh, unshared state."""
    fixed = template.__dict__.get("_mailer_fixed")
    if fixed is None:
        if template.environment.context_class is not Context or type(template.globals) is not dict:
            return template.new_context(context)
        probe = template.new_context({})
        if sorted(vars(probe)) != _CONTEXT_ATTRS or sorted(vars(probe.eval_ctx)) != _EVAL_ATTRS:
            return template.new_context(context)  # a Jinja whose contexts hold other state
        fixed = template.__dict__["_mailer_fixed"] = (
            template.environment,
            template.name,
            template.globals,
            # only read (Jinja takes set differences of it): one set for every render
            frozenset(template.globals),
            template.blocks,
            probe.eval_ctx.autoescape,
        )
    env, name, globals_, globals_keys, blocks, autoescape = fixed
    eval_ctx = _new_object(EvalContext)
    eval_ctx.__dict__ = {"environment": env, "autoescape": autoescape, "volatile": False}
    ctx = _new_object(Context)
    ctx.__dict__ = {
        "parent": {**globals_, **context},
        "vars": {},
        "environment": env,
        "eval_ctx": eval_ctx,
        "exported_vars": set(),
        "name": name,
        "globals_keys": globals_keys,
        "blocks": {k: [v] for k, v in blocks.items()},
    }
    return ctx


_new_object = object.__new__
_CONTEXT_ATTRS = sorted(
    ["parent", "vars", "environment", "eval_ctx", "exported_vars", "name", "globals_keys", "blocks"]
)
_EVAL_ATTRS = ["autoescape", "environment", "volatile"]


# Where a worker renders. A straight template (no loop, macro, call or costly filter: its
# render costs about its output, a few ms at the output limit) runs its Jinja part on the
# event loop, under a short slice (INLINE_SECONDS) as a backstop; so does filling in the
# holes of a known output shape, the fast path of campaign mail. Everything else runs in
# a thread with the full budget: other templates, a render over its slice (run again,
# whole), compiling, deriving a new shape and the full path (CSS inlining, text
# conversion: inscriptis takes ~1 s for 300 KB of HTML). A runaway then holds one of
# RENDER_THREADS threads for at most its budget: the event loop keeps turning (renewing
# leases, recording SES answers), sharing the GIL with it. Memory needs no process
# boundary: every step is sized before it allocates (budget.py).
RENDER_THREADS = 2
INLINE_SECONDS = 0.005
INLINE_CHARS = 100_000  # output the fast path fills in on the loop (microseconds)
RENDER_POOL = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="render")


async def render_off_loop(template: CompiledTemplate, context: dict[str, Any]) -> Rendered:
    """``template.render(context)`` as an event loop should call it (see above)."""
    loop = asyncio.get_running_loop()
    if not template.straight:
        return await loop.run_in_executor(RENDER_POOL, template.render, context)
    try:
        filled = template.fill(context, INLINE_SECONDS)
    except SliceOver:
        return await loop.run_in_executor(RENDER_POOL, template.render, context)
    done = template.finish(filled, slow=False)
    if done is None:
        done = await loop.run_in_executor(RENDER_POOL, template.finish, filled, True)
    assert done is not None  # noqa: S101 - slow=True always finishes
    return done


def message_context(
    email: str,
    contact: Any,
    data: dict[str, Any] | None,
    unsubscribe_url: str,
    postal_address: str,
    campaign: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template sees (docs/templates.md): ``contact`` (a row with ``attributes``
    and ``tags``, or None for a recipient who is not a contact), ``data``,
    ``unsubscribe_url``, ``postal_address`` and, for campaign mail, ``campaign``."""
    context: dict[str, Any] = {
        "contact": {
            "email": email,
            "attributes": contact.attributes if contact is not None else {},
            "tags": list(contact.tags) if contact is not None else [],
        },
        "data": data or {},
        "unsubscribe_url": unsubscribe_url,
        # the preference centre reads the same token (mailer.subscription.tokens)
        "preferences_url": unsubscribe_url.replace("/unsubscribe/", "/preferences/", 1),
        "postal_address": postal_address,
    }
    if campaign is not None:
        context["campaign"] = campaign
    return context


def render_problem(template: CompiledTemplate, context: dict[str, Any]) -> str | None:
    """None when the message renders; else which part fails and why, for a 422 at the
    door ("html: template error: 'dict object' has no attribute 'code'")."""
    try:
        template.render(context)
    except RenderError as exc:
        for part in PARTS:
            piece = getattr(template, part)
            if piece is None:
                continue
            try:
                CompiledTemplate(subject=piece, html=piece, text=None).render(context)
            except RenderError:
                return f"{part}: {exc}"
        return str(exc)
    return None


__all__ = [
    "PARTS",
    "CompiledTemplate",
    "RenderError",
    "RenderLimitError",
    "Rendered",
    "message_context",
    "render_problem",
    "render_off_loop",
]
