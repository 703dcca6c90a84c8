/* saesite: example lines on feature pages: expand a line to its whole sequence, and a token
   tooltip that works with a mouse, keyboard focus and a tap.
   Lines are <p data-x="seq,pos[,next-token logit effect[,window_start,length]]"
   data-a="offset:act,act;offset:act"> (the window's non-zero activations, in runs), or
   <p data-t="k">: the k-th top example again. <main> says where the token store is
   (data-root), how many sequences a shard holds (data-shard, 0 for none), the feature's
   maximum (data-max) and the window a line has when it does not say (data-window="before,after":
   max(0, pos - before) to pos + after; site/token_markup.py). The dataset's tokens are in tokens/vocab.js
   and tokens/seq-K.js (site/token_store.py), loaded on demand with a <script src> (file://
   allows no fetch). Token HTML in the store was escaped at build time. */
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  var page = document.querySelector('main[data-shard]');
  var boxes = document.querySelectorAll('.exs');
  if (!page || !boxes.length) return;
  var per = parseInt(page.getAttribute('data-shard'), 10) || 0;
  var root = page.getAttribute('data-root') || '';
  var pageMax = parseFloat(page.getAttribute('data-max')) || 0;
  var context = (page.getAttribute('data-window') || '0,0').split(',').map(Number);
  // a line that repeats a top example is that line, copied
  var tops = document.querySelectorAll('#top .exs p[data-x]'), refs = document.querySelectorAll('.exs p[data-t]');
  for (var t = 0; t < refs.length; t++) {
    var from = tops[+refs[t].getAttribute('data-t')];
    if (!from) continue;
    refs[t].setAttribute('data-x', from.getAttribute('data-x'));
    refs[t].setAttribute('data-a', from.getAttribute('data-a'));
    refs[t].innerHTML = from.innerHTML;
  }
  var store = window.SAESITE_TOKENS = window.SAESITE_TOKENS || { shards: {} };
  var waiting = {};
  var tip = document.createElement('div');
  tip.id = 'tok-tip';
  tip.setAttribute('role', 'tooltip');
  tip.hidden = true;
  document.body.appendChild(tip);

  function load(root, name, ready) {
    var src = root + 'tokens/' + name + '.js';
    if (waiting[src] === true) { ready(); return; }
    if (waiting[src]) { waiting[src].push(ready); return; }
    waiting[src] = [ready];
    var s = document.createElement('script');
    s.src = src;
    s.onload = function () { var q = waiting[src]; waiting[src] = true; q.forEach(function (f) { f(); }); };
    s.onerror = function () { waiting[src] = null; };
    document.head.appendChild(s);
  }
  function withSequence(seq, ready) {
    var shard = Math.floor(seq / per);
    load(root, 'vocab', function () {
      load(root, 'seq-' + shard, function () {
        var rows = store.shards[shard], joins = store.joins && store.joins[shard];
        // joins: tokens whose bytes complete a character with their neighbours', as lines draw them
        if (store.vocab && rows && rows[seq - shard * per]) ready(rows[seq - shard * per], (joins && joins[seq - shard * per]) || {});
      });
    });
  }
  function where(p) {
    var x = (p.getAttribute('data-x') || '').split(','), acts = [], runs = (p.getAttribute('data-a') || '').split(';');
    var pos = +x[1], start = x.length > 3 ? +x[3] : Math.max(0, pos - context[0]);
    var length = x.length > 3 ? +x[4] : pos + context[1] + 1 - start;
    for (var k = 0; k < length; k++) acts.push('');
    for (var r = 0; r < runs.length; r++) {
      var at = runs[r].indexOf(':'), values = runs[r].slice(at + 1).split(',');
      if (at < 1) continue;  // no run: a window of zeros
      for (var v = 0; v < values.length; v++) acts[+runs[r].slice(0, at) + v] = values[v];
    }
    return { seq: +x[0], pos: pos, start: start, acts: acts, logit: x[2] || null };
  }
  function level(act, max) {
    return act > 0 && max > 0 ? Math.min(8, Math.max(1, Math.ceil(8 * act / max))) : 0;
  }
  // the feature's direct effect on the logit of the token after the example's own token
  function effect(w) { return 'direct effect on the next token\'s logit ' + w.logit; }
  function text(id) { var v = store.vocab && store.vocab[id]; return v ? v[1] : '?'; }

  function expand(p) {
    var next = p.nextElementSibling;
    if (next && next.classList.contains('full')) {
      next.remove();
      p.setAttribute('aria-expanded', 'false');
      return;
    }
    var w = where(p), max = 0;
    for (var k = 0; k < w.acts.length; k++) max = Math.max(max, +w.acts[k] || 0);
    max = pageMax || max;
    withSequence(w.seq, function (ids, joins) {
      var div = document.createElement('div');
      div.className = 'full';
      var html = [];
      for (var i = 0; i < ids.length; i++) {
        var v = store.vocab[ids[i]] || ['?', '?'];
        var j = i - w.start, act = j >= 0 && j < w.acts.length ? +w.acts[j] || 0 : null;
        var cls = level(act, max) ? 'a' + level(act, max) : '';
        if (i === w.pos) cls += ' own';
        // a newline mark ends its line: the mark stays, the break follows it
        html.push('<span data-i="' + i + '"' + (cls ? ' class="' + cls + '"' : '') +
          (act ? ' tabindex="0"' : '') + '>' + (joins[i] || v[0]).replace(/\u23ce/g, '\u23ce\n') + '</span>');
      }
      div.innerHTML = html.join('');
      div.setAttribute('data-seq', w.seq);
      div._where = w;
      div._ids = ids;
      p.parentNode.insertBefore(div, p.nextSibling);
      p.setAttribute('aria-expanded', 'true');
    });
  }

  function show(target, lines) {
    tip.textContent = '';
    for (var i = 0; i < lines.length; i++) {
      var line = document.createElement('div');
      line.textContent = lines[i];
      tip.appendChild(line);
    }
    tip.hidden = false;
    var r = target.getBoundingClientRect();
    var left = Math.max(4, Math.min(window.scrollX + r.left, window.scrollX + document.documentElement.clientWidth - tip.offsetWidth - 4));
    tip.style.left = left + 'px';
    tip.style.top = (window.scrollY + r.bottom + 4) + 'px';
  }
  function describe(el) {
    var full = el.closest('.full');
    if (full) {
      var i = +el.getAttribute('data-i'), w = full._where, ids = full._ids, j = i - w.start;
      var act = j >= 0 && j < w.acts.length ? (w.acts[j] || '0') : 'not stored (outside the window)';
      var out = ['token ' + text(ids[i]) + '  (id ' + ids[i] + ')', 'activation ' + act,
        'position ' + i + ' of sequence ' + w.seq,
        'next token ' + (i + 1 < ids.length ? text(ids[i + 1]) + '  (id ' + ids[i + 1] + ')' : '(end of sequence)')];
      if (i === w.pos && w.logit) out.push(effect(w));
      return out;
    }
    var p = el.closest('p[data-x]'), wp = where(p);
    // the k-th element of a line is its k-th non-zero token, or the own token
    var own = wp.pos - wp.start, order = [], els = p.querySelectorAll('i, u');
    for (var a = 0; a < wp.acts.length; a++) if (wp.acts[a] || a === own) order.push(a);
    var j = order[Array.prototype.indexOf.call(els, el)], at = wp.start + j;
    var lines = ['token ' + el.textContent, 'activation ' + (wp.acts[j] || '0'),
      'position ' + at + ' of sequence ' + wp.seq];
    var last = j === own && wp.logit ? effect(wp) : null;
    var filled = false;
    if (per > 0) {
      withSequence(wp.seq, function (ids) {
        // loaded later: the tooltip opens again, now with the store at hand
        if (filled === null) { if (!tip.hidden && tip._for === el) open(el); return; }
        lines[0] = 'token ' + text(ids[at]) + '  (id ' + ids[at] + ')';
        lines.push('next token ' + (at + 1 < ids.length ? text(ids[at + 1]) + '  (id ' + ids[at + 1] + ')' : '(end of sequence)'));
        filled = true;
      });
      if (!filled) filled = null;
    }
    if (last) lines.push(last);
    return lines;
  }
  function open(el) { tip._for = el; show(el, describe(el)); }
  function close() { tip.hidden = true; tip._for = null; }
  function tokenOf(node) {
    return node && node.closest ? node.closest('.exs p[data-x] i, .exs p[data-x] u, .full span[data-i]') : null;
  }

  // a line drawn from the store exactly as site/token_markup.py draws one: its value, plain text for
  // tokens that do not fire (spaces as spaces), <i class=aN> for those that do, <u> for the
  // example's own token; the context before it in its own right-aligned column
  function plain(html) {
    return html.replace(/<b>([^<]*)<\/b>/g, function (m, marks) {
      return ('<b>' + marks.replace(/\u00b7/g, '</b> <b>') + '</b>').replace(/<b><\/b>/g, '');
    });
  }
  function fill(p, ids, joins) {
    var w = where(p), own = w.pos - w.start, before = [], after = [], max = pageMax;
    for (var j = 0; j < w.acts.length; j++) {
      var v = store.vocab[ids[w.start + j]] || ['?', '?'], act = +w.acts[j] || 0, part;
      var html = (joins && joins[w.start + j]) || v[0];
      if (j !== own && !(act > 0 && max > 0)) part = plain(html);
      else {
        var cls = act > 0 && max > 0 ? ' class=a' + level(act, max) : '';
        part = (j === own ? '<u' : '<i') + cls + '>' + html + (j === own ? '</u>' : '</i>');
      }
      (j < own ? before : after).push(part);
    }
    var value = document.createElement('var');
    value.textContent = w.acts[own] || '0';
    p.appendChild(value);
    p.insertAdjacentHTML('beforeend', '<span><span>' + before.join('').replace(/<\/b><b>/g, '') +
      '</span></span><span>' + after.join('').replace(/<\/b><b>/g, '') + '</span>');
  }
  function fillBox(box) {
    var stubs = box.querySelectorAll('p[data-x]');
    for (var s = 0; s < stubs.length; s++) {
      (function (p) {
        if (p.querySelector('span')) return;
        withSequence(where(p).seq, function (ids, joins) { if (!p.querySelector('span')) fill(p, ids, joins); });
      })(stubs[s]);
    }
  }
  var toFill = document.querySelectorAll('.exs[data-fill]');
  if (toFill.length && 'IntersectionObserver' in window) {
    // shards load when the examples come near the screen, not with the page
    var seen = new IntersectionObserver(function (entries) {
      for (var e = 0; e < entries.length; e++) {
        if (entries[e].isIntersecting) { seen.unobserve(entries[e].target); fillBox(entries[e].target); }
      }
    }, { rootMargin: '600px 0px' });
    for (var f = 0; f < toFill.length; f++) seen.observe(toFill[f]);
  } else {
    for (var g = 0; g < toFill.length; g++) fillBox(toFill[g]);
  }

  for (var b = 0; b < boxes.length && per > 0; b++) {
    var lines = boxes[b].querySelectorAll('p[data-x]');
    for (var l = 0; l < lines.length; l++) {
      lines[l].tabIndex = 0;
      lines[l].setAttribute('role', 'button');
      lines[l].setAttribute('aria-expanded', 'false');
      lines[l].setAttribute('aria-label', 'example; Enter shows the whole sequence');
    }
  }
  document.addEventListener('mouseover', function (e) {
    var el = tokenOf(e.target);
    if (el) open(el);
    else if (!tip.contains(e.target)) close();
  });
  document.addEventListener('focusin', function (e) {
    var el = tokenOf(e.target);
    if (!el && e.target.matches && e.target.matches('.exs p[data-x]')) el = e.target.querySelector('u');
    if (el) open(el); else close();
  });
  document.addEventListener('click', function (e) {
    var el = tokenOf(e.target);
    if (el) { open(el); return; }  // a tap on a token shows its tooltip
    var p = e.target.closest && e.target.closest('.exs p[role=button]');
    if (p) { close(); expand(p); }
    else if (!tip.contains(e.target)) close();
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') { close(); return; }
    var p = e.target;
    if ((e.key === 'Enter' || e.key === ' ') && p.matches && p.matches('.exs p[role=button]')) {
      e.preventDefault();
      close();
      expand(p);
    }
  });
})();
