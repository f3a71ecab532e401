"""A location's extent as Google Maps reports it: the map its own page opens on.

Searching a place alone ("Omaha, NE") opens its place page with the map fitted to the place. The
page states that map three ways, read here in order of trust:

1. the camera of the place payload (``[4]`` of the ``)]}'`` string inside
   ``APP_INITIALIZATION_STATE``; the real capture ``place-state-kipriakon.json`` has it there);
2. the camera of the state itself (``APP_INITIALIZATION_STATE[0]``), also on results pages;
3. the ``/@lat,lng,zoomz`` of the page's URL, with the browser's own viewport size.

A camera is ``[[altitude_m, lng, lat], …, [width_px, height_px], fov]``: it carries its own size.
"""

from __future__ import annotations

import re

from leadlawk_daemon.maps.area import Viewport, camera_viewport
from leadlawk_daemon.maps.place_array import at
from leadlawk_daemon.maps.state import find_state_payloads, find_states

__all__ = ["page_viewport", "url_viewport"]

_URL_VIEWPORT = re.compile(r"/@(-?\d{1,2}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?),(\d{1,2}(?:\.\d+)?)z")


def url_viewport(url: str, width_px: int, height_px: int) -> Viewport | None:
    """The viewport a Maps URL's ``/@lat,lng,zoomz`` names, shown at ``width_px`` × ``height_px``."""
    match = _URL_VIEWPORT.search(url)
    if match is None:
        return None
    lat, lng, zoom = (float(g) for g in match.groups())
    if not (-85 <= lat <= 85 and -180 <= lng <= 180 and 0 <= zoom <= 22):
        return None
    return Viewport(lat, lng, zoom, width_px, height_px)


def page_viewport(html: str, url: str, width_px: int, height_px: int) -> Viewport | None:
    """The map a Google Maps page shows (see the module's docstring), or None if it states none."""
    for payload in find_state_payloads(html):
        viewport = camera_viewport(at(payload, 4))
        if viewport is not None:
            return viewport
    for state in find_states(html):
        viewport = camera_viewport(at(state, 0))
        if viewport is not None:
            return viewport
    return url_viewport(url, width_px, height_px)
