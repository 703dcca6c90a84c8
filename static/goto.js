/* saesite: the go-to box on every page: a feature id and Enter opens that feature (through
   index.html#N, which knows the folders). */
(function () {
  'use strict';
  var box = document.getElementById('goto');
  if (!box) return;
  box.hidden = false;
  box.addEventListener('keydown', function (e) {
    if (e.key !== 'Enter') return;
    var id = box.value.trim().replace(/^#/, '');
    if (!/^\d+$/.test(id)) return;
    e.preventDefault();
    location.href = (box.getAttribute('data-root') || '') + 'index.html#' + id;
  });
})();
