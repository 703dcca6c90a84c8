// Step through the SAE decoder frames on toy pages: previous/next buttons and a range slider.
// Without JavaScript every frame stays visible as a static SVG; this only hides all but one.
(function () {
  'use strict';

  function setUp(widget) {
    var items = widget.querySelectorAll('.toy-frames-item');
    var controls = widget.querySelector('.toy-frames-controls');
    var range = widget.querySelector('.toy-frames-range');
    var prev = widget.querySelector('.toy-frames-prev');
    var next = widget.querySelector('.toy-frames-next');
    var output = widget.querySelector('.toy-frames-step');
    if (!items.length || !controls || !range || !prev || !next || !output) {
      return;
    }
    var current = items.length - 1;

    function show(index) {
      current = Math.max(0, Math.min(items.length - 1, index));
      for (var i = 0; i < items.length; i++) {
        items[i].hidden = i !== current;
      }
      range.value = String(current);
      output.textContent = 'frame ' + (current + 1) + ' of ' + items.length +
        ' · step ' + items[current].getAttribute('data-step');
      prev.disabled = current === 0;
      next.disabled = current === items.length - 1;
    }

    prev.addEventListener('click', function () { show(current - 1); });
    next.addEventListener('click', function () { show(current + 1); });
    range.addEventListener('input', function () { show(parseInt(range.value, 10) || 0); });
    widget.addEventListener('keydown', function (event) {
      if (event.target === range) {
        return;
      }
      if (event.key === 'ArrowLeft') {
        show(current - 1);
      } else if (event.key === 'ArrowRight') {
        show(current + 1);
      }
    });
    controls.hidden = false;
    show(current);
  }

  function init() {
    var widgets = document.querySelectorAll('.toy-frames');
    for (var i = 0; i < widgets.length; i++) {
      setUp(widgets[i]);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
