"""The server-rendered HTML upload page (the role of the course project's Flask templates).

Jinja2 with autoescaping; the annotated image is embedded as a data URL, so
nothing is written to disk.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>faceattrs</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2rem auto; padding: 0 1rem; color: #222; }
 h1 { margin-bottom: .2rem; } .note { color: #555; }
 form { margin: 1.5rem 0; padding: 1rem; border: 1px solid #ccc; border-radius: 8px; }
 .error { background: #fde8e8; border: 1px solid #e99; padding: .8rem; border-radius: 6px; }
 img.result { max-width: 100%; border-radius: 6px; }
 table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
 th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; }
 svg.ages { vertical-align: middle; margin-left: .5rem; } .in { fill: #1f6fd1; } .out { fill: #9cc4f2; }
</style>
</head>
<body>
<h1>faceattrs</h1>
<p class="note">Apparent age (with a 90% range), gender and ethnicity for every face in a photo.
Images are analysed in memory and never stored. Research use only; never use the output to make
decisions about individuals.</p>
<form method="post" action="/" enctype="multipart/form-data">
 <label>Photo (up to {{ max_mb }} MB, {{ max_mp }} megapixels):
  <input type="file" name="file" accept="image/*" required></label>
 <button type="submit">Analyse</button>
</form>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if result %}
 {% if result.faces %}
  <img class="result" src="{{ annotated }}" alt="the photo with every face boxed and numbered">
  <table>
   <thead><tr><th>#</th><th>age</th><th>90% range</th><th>gender</th><th>ethnicity</th><th>notes</th></tr></thead>
   <tbody>
   {% for f in result.faces %}
    <tr><td>{{ f.number }}</td><td>{{ "%.0f"|format(f.age) }}</td>
     <td>{{ "%.0f"|format(f.age_low) }}–{{ "%.0f"|format(f.age_high) }}{{ age_bars(f) }}</td>
     <td>{{ f.gender }} ({{ "%.0f"|format(100 * f.gender_prob) }}%)</td>
     <td>{{ f.ethnicity }} ({{ "%.0f"|format(100 * f.ethnicity_prob) }}%)</td>
     <td>{{ (f.quality_flags + ([child_note] if f.looks_like_a_child else []))|join(", ") }}</td></tr>
   {% endfor %}
   </tbody>
  </table>
 {% else %}
  <p class="error" role="alert">No face found in this photo.</p>
 {% endif %}
{% endif %}
<p class="note">Model {{ meta.name }} v{{ meta.version }}:
{% if meta.metrics %}test age MAE {{ "%.2f"|format(meta.metrics.age_mae) }} years,
ethnicity accuracy {{ "%.1f"|format(100 * meta.metrics.ethnicity_accuracy) }}%,
gender accuracy {{ "%.1f"|format(100 * meta.metrics.gender_accuracy) }}%.
{% else %}no test figures for this model folder (a candidate scored on validation only).
{% endif %}API: <a href="/docs">/docs</a> · <a href="/v1/model">/v1/model</a></p>
</body>
</html>
"""


def age_bars(face: Any, width: int = 120, height: int = 24) -> Markup:
    """A small SVG bar chart of a face's age distribution around its 90% range (darker bars inside the range).

    Built from numbers only, so it is safe to put in the page unescaped.
    """
    if face.age_probs is None:
        return Markup("")
    ages, probs, inside = face.age_window()
    step = width / len(ages)
    top = float(probs.max()) or 1.0
    bars = "".join(
        f'<rect class="{"in" if i else "out"}" x="{k * step:.1f}" y="{height * (1 - p / top):.1f}" '
        f'width="{max(step - 0.5, 0.5):.1f}" height="{height * p / top:.1f}"/>'
        for k, (p, i) in enumerate(zip(probs.tolist(), inside.tolist(), strict=True))
    )
    label = f"age distribution, ages {ages[0]} to {ages[-1]}"
    return Markup(f'<svg class="ages" width="{width}" height="{height}" role="img" aria-label="{label}">{bars}</svg>')


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_env.globals["age_bars"] = age_bars
_page = _env.from_string(_TEMPLATE)


def render(settings: Any, meta: dict[str, Any], result: Any = None, annotated: str | None = None,
           error: str | None = None) -> str:  # fmt: skip
    """The upload page's HTML, with a result (faces and the annotated photo) or an error when there is one."""
    return _page.render(
        max_mb=settings.max_request_bytes // (1024 * 1024),
        max_mp=settings.max_pixels // 1_000_000,
        meta=meta,
        result=result,
        annotated=annotated,
        error=error,
        child_note="children's gender is hard to read",
    )
