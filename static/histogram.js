/* saesite: histogram bars name their range and count on hover and keyboard focus.
   A plot is <svg data-px="left,right" data-edges="lo,hi" (equal bins) or every edge,
   data-counts="c0,c1,…" data-unit="tokens" tabindex="0"> (site/plots.py). Arrow keys move
   between bars, Home/End jump to the ends, Escape hides the note. Plots read without it. */
(function () {
  'use strict';
  var plots = document.querySelectorAll('svg[data-counts]');
  if (!plots.length) return;
  var NS = 'http://www.w3.org/2000/svg';
  var tip = document.createElement('div');
  tip.className = 'bin-tip';
  tip.setAttribute('role', 'status');
  tip.setAttribute('aria-live', 'polite');
  tip.hidden = true;
  document.body.appendChild(tip);

  function fmt(v) { return Number(v.toPrecision(3)).toString(); }
  function setup(svg) {
    var px = svg.getAttribute('data-px').split(',').map(Number);
    var counts = svg.getAttribute('data-counts').split(',').map(Number);
    var given = svg.getAttribute('data-edges').split(',').map(Number), edges = given;
    if (given.length === 2 && counts.length > 1) {
      edges = [];
      for (var k = 0; k <= counts.length; k++) edges.push(given[0] + (given[1] - given[0]) * k / counts.length);
    }
    var box = svg.viewBox.baseVal, mark = document.createElementNS(NS, 'rect');
    mark.setAttribute('class', 'plot-hover');
    mark.setAttribute('y', 0);
    mark.setAttribute('height', box.height);
    mark.style.display = 'none';
    svg.appendChild(mark);
    var unit = svg.getAttribute('data-unit') || 'count', current = -1;
    function x(value) { return px[0] + (value - edges[0]) / (edges[edges.length - 1] - edges[0]) * (px[1] - px[0]); }
    function show(i) {
      current = i;
      mark.setAttribute('x', x(edges[i]));
      mark.setAttribute('width', Math.max(1, x(edges[i + 1]) - x(edges[i])));
      mark.style.display = '';
      tip.textContent = fmt(edges[i]) + ' to ' + fmt(edges[i + 1]) + ': ' + counts[i].toLocaleString('en-US') + ' ' + unit;
      tip.hidden = false;
      var r = svg.getBoundingClientRect(), at = r.left + (x(edges[i]) / box.width) * r.width;
      tip.style.left = Math.max(4, Math.min(window.scrollX + at, window.scrollX + document.documentElement.clientWidth - tip.offsetWidth - 4)) + 'px';
      tip.style.top = (window.scrollY + r.top - tip.offsetHeight - 2) + 'px';
    }
    function hide() { mark.style.display = 'none'; tip.hidden = true; }
    svg.addEventListener('mousemove', function (e) {
      var r = svg.getBoundingClientRect(), at = (e.clientX - r.left) / r.width * box.width;
      for (var i = 0; i < counts.length; i++) {
        if (at >= x(edges[i]) && at < x(edges[i + 1])) { show(i); return; }
      }
      hide();
    });
    svg.addEventListener('mouseleave', hide);
    svg.addEventListener('blur', hide);
    svg.addEventListener('focus', function () {
      var first = 0;
      while (first < counts.length - 1 && !counts[first]) first++;
      show(current >= 0 ? current : first);
    });
    svg.addEventListener('keydown', function (e) {
      var to = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: counts.length - 1 }[e.key];
      if (e.key === 'Escape') { hide(); return; }
      if (to === undefined) return;
      e.preventDefault();
      show(Math.max(0, Math.min(counts.length - 1, to)));
    });
  }
  for (var p = 0; p < plots.length; p++) setup(plots[p]);
})();
