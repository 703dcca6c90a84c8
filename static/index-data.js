/* saesite: the search index shards (search/index-K.js) flattened into one list of rows.
   Row: [index, density, max_activation, flags, label, fires_on, promotes, suppresses];
   flags: 1 dead, 2 dense. Tokens are in the visible form pages show ("·django"). */
(function () {
  'use strict';
  var data = window.SAESITE_INDEX;
  var box = document.getElementById('search');
  if (!data || !box) return;
  // a multi-SAE site's overview searches every SAE: static/multi/sae-tag.js marks each
  // shard with its SAE, search/saes.js (window.SAESITE_SAES) says where its pages are
  var saes = window.SAESITE_SAES || null;
  var shards = data.shards.slice().sort(function (a, b) {
    return (a.sae || 0) - (b.sae || 0) || a.start - b.start;
  });
  var rows = [];
  for (var s = 0; s < shards.length; s++) {
    var part = shards[s].rows;
    for (var i = 0; i < part.length; i++) rows.push(saes ? part[i].concat([shards[s].sae]) : part[i]);
  }
  var perFolder = parseInt(box.getAttribute('data-per-folder'), 10) || 500;
  var width = parseInt(box.getAttribute('data-width'), 10) || 3;
  data.rows = rows;
  data.saes = saes;
  // row[9], in a multi-SAE overview: the number of the row's SAE in SAESITE_SAES
  data.href = function (id, row) {
    var sae = saes && row ? saes[row[9]] : null;
    var per = sae ? sae.per_folder : perFolder, w = sae ? sae.width : width;
    var folder = String(Math.floor(id / per));
    while (folder.length < w) folder = '0' + folder;
    return (sae ? sae.prefix : '') + 'features/' + folder + '/' + id + '.html';
  };
  data.pct = function (fraction) {
    var v = fraction * 100;
    return (v === 0 ? '0' : String(Number(v.toPrecision(3)))) + '%';
  };
  data.flagNames = function (flags) {
    var names = [];
    if (flags & 1) names.push('dead');
    if (flags & 2) names.push('dense');
    return names.join(' ');
  };
  // the index's state in its URL: #q=…&t=… (search, table), so Back returns to the same place
  data.hashGet = function (key) {
    var parts = location.hash.replace(/^#/, '').split('&');
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].lastIndexOf(key + '=', 0) === 0) {
        try { return decodeURIComponent(parts[i].slice(key.length + 1)); } catch (e) { return ''; }
      }
    }
    return null;
  };
  data.hashSet = function (key, value) {
    var parts = location.hash.replace(/^#/, '').split('&').filter(function (p) {
      return p && p.lastIndexOf(key + '=', 0) !== 0 && !/^\d+$/.test(p);
    });
    if (value) parts.push(key + '=' + encodeURIComponent(value));
    try {
      history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname + location.search);
    } catch (e) { /* some browsers refuse replaceState on file:// */ }
  };
  // index.html#1592 (or ?1592) opens feature 1592: a URL a person can type
  var typed = /^#(\d+)$/.exec(location.hash) || /^\?(\d+)$/.exec(location.search);
  if (typed && !saes && +typed[1] < rows.length) {
    location.replace(data.href(+typed[1]));
  }
  data.codeList = function (parent, tokens) {
    for (var i = 0; i < tokens.length; i++) {
      var code = document.createElement('code');
      code.textContent = tokens[i];
      parent.appendChild(code);
      parent.appendChild(document.createTextNode(' '));
    }
  };
})();
