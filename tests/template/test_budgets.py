"""Template budgets are checked before the work: a template that asks for gigabytes in one
step is refused before the step runs. Each bomb is measured by the peak resident memory
of this process (Linux' VmHWM, reset before each one): it must grow by less than 50 MB.

Before the budgets came first, ``{{ ([('a'*300000)]*3000)|join }}`` grew the process by
~860 MB before the output limit stopped it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailer.template.compiler import check_syntax, compile_template
from mailer.template.render import RenderError, RenderLimitError

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
MB = 1024 * 1024

BIG = "a" * 300_000  # what one message's data may hold (the API takes 1 MB bodies)
DATA = {"s": BIG, "tabs": "\t" * 300_000, "lines": "x\n" * 150_000, "short": "x\n" * 20_000}
S200 = "(" + ", ".join(["data.s"] * 200) + ")"

# (template, a piece of the error)
BOMBS = [
    # join: the sum of the items' lengths and separators
    ("{{ ([('a'*300000)]*3000)|join }}", "output limit"),
    ("{{ ''.join([('a'*300000)]*3000) }}", "output limit"),
    ("{{ ([data.s]*3000)|join(attribute='upper') }}", "cannot be turned into text"),
    ("{{ ([data.s]*3000)|map('lower')|join }}", "output limit"),
    # tojson: an estimate of the output (escapes, indent)
    ("{{ ([data.s]*3000)|tojson }}", "output limit"),
    ("{{ ([range(10000)|list]*10)|tojson(indent=1000) }}", "output limit"),
    # indent: lines x width
    ("{{ data.lines|indent(1000) }}", "output limit"),
    ("{{ data.lines|indent('y' * 1000) }}", "output limit"),
    # str() of big structures: output, ~, string, pprint, text filters
    ("{{ [data.s]*1000 }}", "output limit"),
    ("{{ ([data.s]*1000)|string }}", "output limit"),
    ("{{ '' ~ [data.s]*1000 }}", "output limit"),
    ("{{ ([range(10000)|list]*10)|pprint }}", "output limit"),
    ("{{ ([data.s]*1000)|center(10) }}", "output limit"),
    ("{{ ([data.s]*1000)|upper }}", "output limit"),
    ("{{ {'k': [data.s]*1000}|xmlattr }}", "output limit"),
    ("{{ ([data.s]*1000)|urlencode }}", "output limit"),
    # %, format: each %s its value, each %(key)s its value again
    ("{{ ('%s' * 200) % " + S200 + " }}", "output limit"),
    ("{{ ('%(a)s' * 2000) % {'a': data.s} }}", "output limit"),
    ("{{ ('%s' * 200)|format" + S200 + " }}", "output limit"),
    # replace (keyword arguments too), string methods that pad, expand or map
    ("{{ data.s|replace(old='a', new='b' * 100) }}", "output limit"),
    ("{{ ([data.s]*1000)|replace('a', 'b') }}", "output limit"),
    ("{{ data.s.replace('a', 'bb') }}", "output limit"),
    ("{{ data.tabs.expandtabs(1000) }}", "output limit"),
    ("{{ data.s.translate({97: data.s[:1000]}) }}", "output limit"),
    ("{{ 'a'.encode().ljust(1000000000)|length }}", "width limit"),
    ("{{ (data.s * 1)|center(1000) ~ data.s|title }}", "output limit"),
    # wordwrap (lines x wrapstring), urlize (links x target and rel)
    ("{{ data.s[:199999]|wordwrap(1, true, 'x' * 1000) }}", "wordwrap limit"),
    ("{{ ('a.com ' * 33000)|urlize(target='x' * 1000, rel='y' * 1000) }}", "output limit"),
    # string * and list *, list +, slicing, list of a long string
    ("{{ data.s * 2 }}", "output limit"),
    ("{{ ([data.s] * 100000 + [data.s] * 100000)|length }}", "sequence limit"),
    ("{{ ((data.s|list) + [])|length }}", "sequence limit"),
    ("{{ {}.fromkeys(data.s|list)|length }}", "sequence limit"),
    ("{{ [data.s[::-1]] * 1000 }}", "output limit"),
    # filters chained: each step counted
    ("{{ ('\u00e9' * 100000)|urlencode|urlencode|urlencode|urlencode }}", "output limit"),
    ("{{ ('\ufb03' * 100000)|upper|upper|upper }}", "output limit"),
    ("{{ (range(10000)|map('string')|map('center', 1000)|list)|join }}", "output limit"),
    # dictsort, unique, sort: listing bounded
    ("{{ data.s|sort|length }}", "sequence limit"),
    ("{{ data.s|unique|list|length }}", "sequence limit"),
    ("{{ (data.s|batch(3)|list)|length }}", "sequence limit"),
]

# constant folding: Jinja evaluates constant filters while compiling, where no render's
# budget counted (a literal of 40 KB became 100 MB at compile time)
FOLDED = [
    "{{ '" + "x\\n" * 20_000 + "'|indent(1000)|indent(1000)|indent(1000)|indent(1000) }}",
    "{{ '" + "a" * 100_000 + "'|wordwrap(1, true, '" + "x" * 1000 + "') }}",
    "{{ '" + "a" * 500 + "'|replace('', '" + "b" * 500 + "')|replace('', 'cc') }}",
]


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) * 1024  # type: ignore[union-attr]


def peak_growth(work: Callable[[], Any]) -> int:
    """How far the process' resident memory peaked above where it stood, while ``work``
    ran (the peak is reset first: /proc/self/clear_refs, Linux >= 4.0)."""
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    work()
    return _status("VmHWM") - before


def _context() -> dict[str, Any]:
    return {"contact": {"email": "a@x.test", "attributes": {}, "tags": []}, "data": DATA}


def _refused(html: str) -> str:
    try:
        compile_template(TEMPLATES, "s", html, None).render(_context())
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"{html[:80]!r} rendered")


@pytest.mark.parametrize(("html", "expected"), BOMBS, ids=[b[0][:50] for b in BOMBS])
def test_each_bomb_is_refused_before_it_allocates(html, expected):
    _refused(html)  # warm: the rendering stack's own first-use allocations do not count
    errors: list[str] = []
    grown = peak_growth(lambda: errors.append(_refused(html)))
    assert expected in errors[0], errors[0]
    assert grown < 50 * MB, f"{grown / MB:.0f} MB for {html[:60]!r}"


@pytest.mark.parametrize("html", FOLDED, ids=["indent", "wordwrap", "replace"])
def test_constant_folding_runs_no_filter_at_compile_time(html):
    compile_template(TEMPLATES, "s", "{{ 'x'|indent(2) }}", None)  # warm
    grown = peak_growth(lambda: compile_template(TEMPLATES, "s", html, None))
    assert grown < 50 * MB, f"compiling grew the process by {grown / MB:.0f} MB"
    grown = peak_growth(lambda: pytest.raises(RenderLimitError, _refused_limit, html))
    assert grown < 50 * MB


def _refused_limit(html: str) -> None:
    compile_template(TEMPLATES, "s", html, None).render(_context())


def test_limits_leave_ordinary_templates_alone():
    html = (
        "{{ data.name|upper }} {{ data.tags|join(', ') }} {{ data.tags|tojson }}"
        " {{ '%s: %d'|format(data.name, 3) }} {{ data.text|wordwrap(20)|indent(2) }}"
        " {{ data.name.center(11, '*') }} {{ ('ab' * 3)|replace('b', 'c') }}"
        " {{ data.tags|map('title')|list }} {{ 'x.com'|urlize }}"
    )
    context = {
        "contact": {},
        "data": {"name": "ann", "tags": ["a", "b"], "text": "one two three four five six"},
    }
    rendered = compile_template(TEMPLATES, "s", "<p>x</p>", html).render(context)
    assert rendered.text.startswith(
        'ANN a, b ["a", "b"] ann: 3 one two three four\n  five six ****ann**** acacac'
        " ['A', 'B'] x.com"
    ), rendered.text


# a method's or function's repr (<built-in method split of str object at 0x…>), however it
# would be made text
FUNCTION_VALUES = [
    "{{ 'abc'.split }}",
    "{{ [''.split] }}",
    "{{ {'a': ''.split} }}",
    "{{ ''.split|string }}",
    "{{ [''.split]|join }}",
    "{{ [''.split]|tojson }}",
    "{{ 'x' ~ ''.split }}",
    "{{ ({'a': ''.split})|pprint }}",
    "{{ range }}",
]
# the same reached through data: only the render can know
FUNCTION_VALUES_AT_RENDER = [
    "{{ data.s.split }}",
    "{{ [data.s.split] }}",
    "{{ {'a': data.s.upper} }}",
    "{{ data.s.split|string }}",
    "{{ [data.s.split]|join }}",
    "{{ [data.s.split]|tojson }}",
    "{{ ['ab']|join(attribute='split') }}",
    "{{ 'x' ~ data.s.split }}",
    "{{ '%s' % data.s.split }}",
    "{{ contact.attributes.items }}",
]


@pytest.mark.parametrize("part", ["subject", "html", "text"])
@pytest.mark.parametrize("payload", FUNCTION_VALUES + FUNCTION_VALUES_AT_RENDER)
def test_a_function_value_is_an_error_at_render(part, payload):
    parts: dict[str, Any] = {"subject": "s", "html": "<p>x</p>", "text": None, part: payload}
    compiled = compile_template(TEMPLATES, parts["subject"], parts["html"], parts["text"])
    with pytest.raises(RenderError) as refused:
        compiled.render({"contact": {"attributes": {}}, "data": {"s": "ab"}})
    assert "cannot be" in str(refused.value) or "formats text and numbers only" in str(
        refused.value
    )
    assert " at 0x" not in str(refused.value) and "<built-in" not in str(refused.value)


@pytest.mark.parametrize("payload", FUNCTION_VALUES)
def test_a_constant_function_value_is_refused_when_saved(payload):
    from jinja2 import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="is a function, not a value"):
        check_syntax(TEMPLATES, "html", payload)


@pytest.mark.parametrize("payload", ["{{ 'abc'.split() }}", "{{ range(3)|list }}"])
def test_called_functions_are_fine_when_saved(payload):
    check_syntax(TEMPLATES, "html", payload)


async def test_over_the_api_a_function_value_is_a_422(client, admin):
    for payload in FUNCTION_VALUES:
        body = {"name": "f", "subject": "s", "html": payload}
        r = await client.post("/v1/templates", headers=admin, json=body)
        assert r.status_code == 422, (payload, r.text)
        assert "is a function, not a value" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/templates", headers=admin, json={"name": "f", "subject": "s", "html": "{{ data.x }}"}
    )
    r = await client.post(
        f"/v1/templates/{r.json()['id']}/render",
        headers=admin,
        json={"data": {"x": {"y": 1}}},
    )
    assert r.status_code == 200
    r = await client.post(
        "/v1/templates",
        headers=admin,
        json={"name": "f", "subject": "s", "html": "{{ data.x.items }}"},
    )
    r = await client.post(
        f"/v1/templates/{r.json()['id']}/render", headers=admin, json={"data": {"x": {}}}
    )
    assert r.status_code == 422 and "cannot be output" in r.json()["error"]["message"]
