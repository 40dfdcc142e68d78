"""What the viewer adds to Gradio's page: CSS that scales the picture to fill its panel, and the
script that turns mouse gestures on the picture into camera messages.

The script listens on the document (the picture's `<img>` is replaced on every frame) for
gestures on `#render img` and writes each as JSON into the hidden `#gesture` textbox, whose
change event runs `ViewerState.gesture` (`apps.viewer.camera.Gesture` documents the fields):
drag to orbit, shift-drag or right-drag to pan, the wheel to zoom, a double-click to re-centre.
A message holds the whole movement since the gesture began, so the server may skip messages
that arrive while it renders (it runs only the latest waiting one) without losing movement.
Moves are sent at most every `SEND_EVERY_MS`; the final message follows the pointer's release
(or the wheel's `WHEEL_REST_MS` rest) and asks for the full-resolution frame.
"""

from __future__ import annotations

__all__ = ["PAGE_CSS", "PAGE_JS", "SEND_EVERY_MS", "WHEEL_REST_MS"]

#: shortest interval between two move messages (ms)
SEND_EVERY_MS = 60
#: quiet time after the last wheel event before the full frame is asked for (ms)
WHEEL_REST_MS = 250

PAGE_CSS = """
#render .image-container, #render .image-frame { width: 100% !important; height: auto !important; }
#render img { width: 100% !important; height: auto !important; max-height: 78vh; object-fit: contain;
  cursor: grab; touch-action: none; user-select: none; -webkit-user-drag: none; }
#render img:active { cursor: grabbing; }
.tf-hidden { display: none !important; }
"""

PAGE_JS = (
    """
() => {
  const SEND_EVERY_MS = %d, WHEEL_REST_MS = %d;
  let sequence = 0, gesture = null, timer = null, wheelTimer = null;
  const send = (message) => {
    const box = document.querySelector('#gesture textarea, #gesture input');
    if (!box) return;
    box.value = JSON.stringify({...message, seq: ++sequence});
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const picture = (event) => event.target instanceof Element ? event.target.closest('#render img') : null;
  const begin = (kind, image) => {
    const rect = image.getBoundingClientRect();
    gesture = {id: Date.now() * 1000 + (++sequence %% 1000), kind, dx: 0, dy: 0, delta: 0, width: rect.width, height: rect.height};
  };
  const flush = () => { timer = null; if (gesture) send(gesture); };
  const later = () => { if (!timer) timer = setTimeout(flush, SEND_EVERY_MS); };
  const finish = () => {
    clearTimeout(timer); timer = null;
    if (gesture) send({...gesture, final: true});
    gesture = null;
  };
  let pointer = null;
  document.addEventListener('pointerdown', (event) => {
    const image = picture(event);
    if (!image) return;
    event.preventDefault();
    if (wheelTimer) { clearTimeout(wheelTimer); wheelTimer = null; finish(); }
    begin(event.button === 2 || event.shiftKey ? 'pan' : 'orbit', image);
    pointer = {x: event.clientX, y: event.clientY, moved: false};
  });
  document.addEventListener('pointermove', (event) => {
    if (!pointer || !gesture) return;
    gesture.dx = event.clientX - pointer.x; gesture.dy = event.clientY - pointer.y;
    if (gesture.dx !== 0 || gesture.dy !== 0) { pointer.moved = true; later(); }
  });
  document.addEventListener('pointerup', () => {
    if (!pointer) return;
    const moved = pointer.moved;
    pointer = null;
    if (moved) finish(); else { clearTimeout(timer); timer = null; gesture = null; }
  });
  document.addEventListener('wheel', (event) => {
    const image = picture(event);
    if (!image) return;
    event.preventDefault();
    if (!wheelTimer) begin('zoom', image);
    gesture.delta += event.deltaY;
    later();
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(() => { wheelTimer = null; finish(); }, WHEEL_REST_MS);
  }, {passive: false});
  document.addEventListener('dblclick', (event) => {
    if (!picture(event)) return;
    event.preventDefault();
    begin('recentre', picture(event));
    finish();
  });
  document.addEventListener('contextmenu', (event) => { if (picture(event)) event.preventDefault(); });
  document.addEventListener('dragstart', (event) => { if (picture(event)) event.preventDefault(); });
}
"""
    % (SEND_EVERY_MS, WHEEL_REST_MS)
)
