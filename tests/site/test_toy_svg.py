import xml.etree.ElementTree as ET

from saesite.site.toy_svg import diverging, importance_colours, svg_open, svg_text


def test_diverging_colours_are_blue_for_negative_white_for_zero_and_red_for_positive():
    assert diverging(0.0, 1.0) == "#f7f7f7"
    blue, red = diverging(-1.0, 1.0), diverging(1.0, 1.0)
    assert int(blue[5:7], 16) > int(blue[1:3], 16)
    assert int(red[1:3], 16) > int(red[5:7], 16)


def test_importance_colours_run_from_dark_for_the_least_to_bright_for_the_most_important():
    dark, mid, bright = importance_colours([0.1, 0.5, 0.9])
    assert dark == "#440154" and bright == "#fde725"

    def brightness(colour: str) -> int:
        return sum(int(colour[i : i + 2], 16) for i in (1, 3, 5))

    assert brightness(dark) < brightness(mid) < brightness(bright)


def test_labels_and_texts_are_escaped_into_well_formed_svg():
    svg = "".join(svg_open(100, 50, 'a <b> & "c"')) + svg_text(1, 2, "x < y & z") + "</svg>"
    root = ET.fromstring(svg)
    assert root.attrib["aria-label"] == 'a <b> & "c"'
    assert root[1].text == "x < y & z"
