"""Text contrast as the browser paints it (WCAG 2.1, 1.4.3), for the light and the dark colour scheme."""

from __future__ import annotations

from playwright.sync_api import Page

#: For every element holding visible text of its own: its colour and the first opaque background
#: behind it, walking up the ancestors (the pages use no background images or translucent layers).
_PAINTED_TEXT = """
() => {
  const rgb = (value) => (value.match(/[\\d.]+/g) || []).map(Number);
  const opaque = (value) => { const c = rgb(value); return c.length === 3 || (c.length === 4 && c[3] === 1); };
  const found = [];
  for (const element of document.body.querySelectorAll("*")) {
    const own = [...element.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const style = getComputedStyle(element);
    const field = element.matches("input:not([type=hidden]), select, textarea") && (element.value || "").trim();
    if ((!own && !field) || !element.getClientRects().length || style.visibility !== "visible") continue;
    if (element.closest("[hidden], .skip")) continue;
    let behind = element;
    while (behind && !opaque(getComputedStyle(behind).backgroundColor)) behind = behind.parentElement;
    const background = behind ? getComputedStyle(behind).backgroundColor : "rgb(255, 255, 255)";
    const weight = Number(style.fontWeight);
    const size = parseFloat(style.fontSize);
    found.push({
      text: (element.innerText || element.value || "").trim().slice(0, 40),
      tag: element.tagName.toLowerCase() + (element.className ? "." + element.className : ""),
      color: rgb(style.color), background: rgb(background),
      large: size >= 24 || (size >= 18.66 && weight >= 700),
      disabled: element.matches(":disabled"),
    });
  }
  return found;
}
"""


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in rgb[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def ratio(foreground: list[float], background: list[float]) -> float:
    """The WCAG contrast ratio of two sRGB colours, 1 to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def poorly_contrasted(page: Page) -> list[str]:
    """Texts on ``page`` under 4.5:1 (3:1 for large text) against what is painted behind them.

    Disabled controls are exempt, as WCAG exempts inactive components.
    """
    problems = []
    for item in page.evaluate(_PAINTED_TEXT):
        needed = 3.0 if item["large"] else 4.5
        measured = ratio(item["color"], item["background"])
        if measured < needed and not item["disabled"]:
            problems.append(f"{item['tag']} {item['text']!r}: {measured:.2f}:1 < {needed}:1")
    return problems


def page_background_luminance(page: Page) -> float:
    """The relative luminance of the body's background (0 black, 1 white)."""
    colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return _luminance([float(part) for part in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3]])
