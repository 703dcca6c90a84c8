/* saesite: search as you type over window.SAESITE_INDEX (see index-data.js).
   A linear scan over precomputed lowercase strings: ~65k features in a few milliseconds.
   Results are built with textContent only: index data is never parsed as HTML. */
(function () {
  'use strict';
  var data = window.SAESITE_INDEX;
  var box = document.getElementById('search');
  if (!data || !data.rows || !box) return;
  var input = document.getElementById('q');
  var status = document.getElementById('search-status');
  var list = document.getElementById('results');
  var rows = data.rows;
  var n = rows.length;
  var PAGE_RESULTS = 50;
  var MAX_RESULTS = PAGE_RESULTS;  // grows by PAGE_RESULTS with each "more results"
  var SEP = '\u0001';  // between tokens (and around each token list)
  var FS = '\u0002';   // between the fields of a feature's haystack
  // [row column, name, score of an exact token, score of a token containing the query]
  var FIELDS = [[5, 'fires on', 90, 40], [6, 'promotes', 70, 25], [7, 'suppresses', 60, 20]];

  function norm(s) {
    return s.toLowerCase().replace(/ /g, '\u00b7').replace(/\n/g, '\u23ce').replace(/\t/g, '\u2192');
  }
  function isMark(code) {  // the whitespace marks pages show: · ⏎ → ↵
    return code === 0xb7 || code === 0x23ce || code === 0x2192 || code === 0x21b5;
  }
  function strip(t) {
    var a = 0, b = t.length;
    while (a < b && isMark(t.charCodeAt(a))) a++;
    while (b > a && isMark(t.charCodeAt(b - 1))) b--;
    return a === 0 && b === t.length ? t : t.slice(a, b);
  }

  // One lowercase haystack per feature, built once:
  //   label FS SEP tok SEP tok SEP FS SEP tok … SEP FS SEP tok … SEP
  // so a whole token is SEP + q + SEP, a substring one indexOf, and fields are found by FS.
  // Built just after the page has loaded (warmUp), or by the first search if that comes
  // sooner: the index shows without waiting for it (~0.1 s per 65,536 features).
  var hay = null, ids = null, labelled = null;
  function prepare() {
    if (hay) return;
    var h = new Array(n);
    ids = new Array(n);
    labelled = [];
    for (var i = 0; i < n; i++) {
      var row = rows[i];
      ids[i] = String(row[0]);
      if (row[4]) labelled.push(i);
      h[i] = ((row[4] ? norm(row[4]) : '') + FS + SEP + row[5].join(SEP) + SEP + FS + SEP +
              row[6].join(SEP) + SEP + FS + SEP + row[7].join(SEP) + SEP).toLowerCase();
    }
    hay = h;
  }

  // rank of the token holding position p of h, counting from the field starting at start
  function rankAt(h, start, p) {
    var r = -1;
    for (var k = h.indexOf(SEP, start); k >= 0 && k < p; k = h.indexOf(SEP, k + 1)) r++;
    return r;
  }
  // is the occurrence of the query core at p a whole token, once whitespace marks are ignored?
  function wholeToken(h, p, len) {
    var a = p - 1, b = p + len;
    while (isMark(h.charCodeAt(a))) a--;
    while (isMark(h.charCodeAt(b))) b++;
    return h.charAt(a) === SEP && h.charAt(b) === SEP;
  }
  // score of the field h[start, end): exact token with its marks > exact without > contains
  function fieldScore(h, start, end, q, exact, part) {
    var p = h.indexOf(q.tokExact, start);
    if (p >= 0 && p < end) return exact + 10 - 3 * rankAt(h, start, p + 1);
    var first = -1;
    for (p = h.indexOf(q.core, start); p >= 0 && p < end; p = h.indexOf(q.core, p + 1)) {
      if (wholeToken(h, p, q.core.length)) return exact - 3 * rankAt(h, start, p);
      if (first < 0) first = p;
    }
    return first >= 0 && q.core.length > 1 ? part - 3 * rankAt(h, start, first) : 0;
  }
  function labelScore(h, q) {
    var end = h.indexOf(FS), p = h.indexOf(q.core);
    if (p < 0 || p >= end) return 0;
    return p === 0 ? (end === q.core.length ? 300 : 160) : 100;
  }

  // words for whitespace, and escapes as typed: they search for the marks pages show
  var ALIASES = { '\\n': '\u23ce', 'newline': '\u23ce', 'new line': '\u23ce', 'linebreak': '\u23ce',
    '\\t': '\u2192', 'tab': '\u2192', '\\r': '\u21b5', 'space': '\u00b7',
    'indent': '\u00b7\u00b7', 'indentation': '\u00b7\u00b7' };
  function parse(raw) {
    var alias = ALIASES[raw.trim().toLowerCase()];
    if (alias) raw = alias;
    var trimmed = raw.trim();
    var lc = trimmed.toLowerCase();
    var tok = norm(raw.replace(/\s+$/, ''));
    return {
      trimmed: trimmed,
      lc: lc,
      tok: tok,
      core: strip(norm(trimmed)) || norm(trimmed),  // a query of marks only keeps them
      tokExact: SEP + tok + SEP,
      isNum: /^\d+$/.test(trimmed),
      flag: lc === 'dead' ? 1 : lc === 'dense' ? 2 : 0
    };
  }

  // the score of feature i for query q (0: no match); no allocation: it runs n times a keystroke
  function score(i, q) {
    var s = 0;
    if (q.isNum) {
      if (ids[i] === q.trimmed) s = 1000;
      else if (ids[i].lastIndexOf(q.trimmed, 0) === 0) s = 150 - 10 * (ids[i].length - q.trimmed.length);
    }
    if (q.flag && (rows[i][3] & q.flag)) s += 500;
    var h = hay[i];
    if (!q.core || h.indexOf(q.core) < 0) return s;
    var a = h.indexOf(FS), b = h.indexOf(FS, a + 1), c = h.indexOf(FS, b + 1);
    return s + labelScore(h, q) + fieldScore(h, a + 1, b, q, 90, 40) +
      fieldScore(h, b + 1, c, q, 70, 25) + fieldScore(h, c + 1, h.length, q, 60, 20);
  }

  // One-character queries "contain"-match nearly everything, so they look up whole tokens in
  // a map instead (built after the page has loaded): token -> packed (feature, field, rank).
  var exactMap = null;
  function exactIndex() {
    if (exactMap) return exactMap;
    exactMap = new Map();
    for (var i = 0; i < n; i++) {
      for (var f = 0; f < FIELDS.length; f++) {
        var tokens = rows[i][FIELDS[f][0]];
        for (var r = 0; r < tokens.length; r++) {
          var key = strip(tokens[r].toLowerCase()) || tokens[r].toLowerCase();
          var codes = exactMap.get(key);
          if (!codes) exactMap.set(key, codes = []);
          codes.push((i * 4 + f) * 16 + r);
        }
      }
    }
    return exactMap;
  }
  function shortScores(q) {
    var scores = new Map();
    function add(i, s) { scores.set(i, (scores.get(i) || 0) + s); }
    for (var i = 0; q.isNum && i < n; i++) {
      if (ids[i] === q.trimmed) add(i, 1000);
      else if (ids[i].lastIndexOf(q.trimmed, 0) === 0) add(i, 150 - 10 * (ids[i].length - 1));
    }
    for (var l = 0; q.core && l < labelled.length; l++) {
      var s = labelScore(hay[labelled[l]], q);
      if (s) add(labelled[l], s);
    }
    var codes = q.core ? (exactIndex().get(q.core) || []).slice() : [];
    if (q.core && isMark(q.core.charCodeAt(0))) {
      // whitespace: every other token holding the marks ("⏎····", "):⏎"), below exact ones
      for (var i2 = 0; i2 < n; i2++) {
        for (var f2 = 0; f2 < FIELDS.length; f2++) {
          var toks = rows[i2][FIELDS[f2][0]];
          for (var r2 = 0; r2 < toks.length; r2++) {
            var low = toks[r2].toLowerCase();
            if (low !== q.core && low.indexOf(q.core) >= 0) codes.push(-1 - ((i2 * 4 + f2) * 16 + r2));
          }
        }
      }
    }
    for (var c = 0; c < codes.length; c++) {
      var code = codes[c] < 0 ? -1 - codes[c] : codes[c];
      var r = code % 16, f = Math.floor(code / 16) % 4, j = Math.floor(code / 64);
      var withMarks = rows[j][FIELDS[f][0]][r].toLowerCase() === q.tok ? 10 : 0;
      add(j, (codes[c] < 0 ? FIELDS[f][3] : FIELDS[f][2] + withMarks) - 3 * r);
    }
    return scores;
  }

  // why feature i matched: only for the results shown
  function explain(i, q) {
    var why = [];
    if (q.isNum && ids[i].lastIndexOf(q.trimmed, 0) === 0) why.push('id');
    if (q.flag && (rows[i][3] & q.flag)) why.push(q.lc);
    if (q.core && labelScore(hay[i], q)) why.push('label');
    for (var f = 0; f < FIELDS.length && q.core; f++) {
      var tokens = rows[i][FIELDS[f][0]];
      for (var r = 0; r < tokens.length; r++) {
        var t = tokens[r].toLowerCase();
        if (t === q.tok || (strip(t) || t) === q.core ||
            ((q.core.length > 1 || isMark(q.core.charCodeAt(0))) && t.indexOf(q.core) >= 0)) {
          why.push([FIELDS[f][1], tokens[r]]);
          break;
        }
      }
    }
    return why;
  }

  function search(raw) {
    prepare();
    var q = parse(raw);
    if (!q.trimmed) return { total: 0, hits: [] };
    var best = [], scores = [], total = 0, floor = 0;
    var short = q.core.length < 2 && !q.flag ? shortScores(q) : null;
    var order = short ? Array.from(short.keys()).sort(function (a, b) { return a - b; }) : null;
    var m = short ? order.length : n;
    for (var o = 0; o < m; o++) {
      var i = short ? order[o] : o;
      var s = short ? short.get(i) : score(i, q);
      if (s <= 0) continue;
      total++;
      if (best.length === MAX_RESULTS && s <= floor) continue;
      // keep the best MAX_RESULTS, by score then id (features are visited in id order)
      var k = best.length;
      while (k > 0 && scores[k - 1] < s) k--;
      best.splice(k, 0, i);
      scores.splice(k, 0, s);
      if (best.length > MAX_RESULTS) { best.pop(); scores.pop(); }
      if (best.length === MAX_RESULTS) floor = scores[MAX_RESULTS - 1];
    }
    var hits = [];
    for (var h = 0; h < best.length; h++) hits.push({ i: best[h], score: scores[h], why: explain(best[h], q) });
    return { total: total, hits: hits };
  }

  function show(result, raw) {
    list.textContent = '';
    var frag = document.createDocumentFragment();
    for (var h = 0; h < result.hits.length; h++) {
      var hit = result.hits[h], row = rows[hit.i];
      var li = document.createElement('li');
      var a = document.createElement('a');
      a.href = data.href(row[0], row);
      a.className = 'rid';
      a.textContent = '#' + row[0];
      if (data.saes) {
        var tag = document.createElement('span');
        tag.className = 'sae-tag';
        tag.textContent = data.saes[row[9]].name;
        li.appendChild(tag);
      }
      li.appendChild(a);
      if (row[8] || row[4]) {
        var label = document.createElement('span');
        label.className = 'lbl';
        label.textContent = row[8] || row[4];
        li.appendChild(label);
      }
      var why = document.createElement('span');
      why.className = 'why';
      for (var w = 0; w < hit.why.length; w++) {
        var item = hit.why[w];
        if (typeof item === 'string') {
          why.appendChild(document.createTextNode((w ? ' · ' : '') + item));
        } else {
          why.appendChild(document.createTextNode((w ? ' · ' : '') + item[0] + ' '));
          var code = document.createElement('code');
          code.textContent = item[1];
          why.appendChild(code);
        }
      }
      why.appendChild(document.createTextNode(' · density ' + data.pct(row[1]) + (row[3] ? ' · ' + data.flagNames(row[3]) : '')));
      li.appendChild(why);
      frag.appendChild(li);
    }
    list.appendChild(frag);
    if (!raw.trim()) status.textContent = 'Type a feature id, a token it fires on or promotes, a label, or dead / dense.';
    else if (!result.total) status.textContent = 'No feature matches.';
    else status.textContent = result.total + ' feature' + (result.total === 1 ? '' : 's') + ' match' +
      (result.total > result.hits.length ? '; showing the best ' + result.hits.length : '') + '.';
    more.hidden = !(result.total > result.hits.length);
  }
  var more = document.createElement('button');
  more.type = 'button';
  more.id = 'more-results';
  more.textContent = 'more results';
  more.hidden = true;
  list.parentNode.insertBefore(more, list.nextSibling);
  more.addEventListener('click', function () {
    MAX_RESULTS += PAGE_RESULTS;
    show(search(input.value), input.value);
  });

  var times = window.saesiteSearchTimes = [];
  var hashTimer = 0;
  function remember(raw) {
    // the query goes into the URL (#q=…) so a search can be shared; not on every keystroke
    data.hashSet('q', raw.trim() ? raw : '');
  }
  function run() {
    MAX_RESULTS = PAGE_RESULTS;
    var t0 = performance.now();
    var raw = input.value;
    show(search(raw), raw);
    times.push(performance.now() - t0);
    clearTimeout(hashTimer);
    hashTimer = setTimeout(function () { remember(raw); }, 400);
  }

  window.saesiteSearch = search;
  box.hidden = false;
  input.addEventListener('input', run);
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter') {
      var first = list.querySelector('a');
      if (first) { e.preventDefault(); location.href = first.href; }
    }
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === '/' && document.activeElement !== input) { e.preventDefault(); input.focus(); }
  });
  // compile the scan now (after the page has loaded) rather than on the first keystroke
  window.addEventListener('load', function () { setTimeout(warmUp, 50); });
  function warmUp() {
    prepare();
    exactIndex();
    var warm = ['e', 'de', '12', 'dead', 'the'];
    for (var w = 0; w < warm.length; w++) search(warm[w]);
  }
  var asked = data.hashGet('q');
  if (asked) {
    input.value = asked;
    run();
  }
})();
