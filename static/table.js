/* saesite: the index's feature table, sortable and paginated over window.SAESITE_INDEX.
   Without JavaScript the index shows the first rows and links the static table/page-K.html. */
(function () {
  'use strict';
  var data = window.SAESITE_INDEX;
  var table = document.getElementById('feature-table');
  if (!data || !data.rows || !table) return;
  var rows = data.rows.slice();
  var PAGE = 100;
  var page = 0;
  // header position -> row field, and whether it sorts as text
  var columns = [[0, false], [8, true], [1, false], [2, false], [3, false]];
  var sortCol = 0, sortDir = 1;
  var tbody = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var buttons = [];

  function key(row, field) {
    var v = field === 8 ? headline(row) : row[field];
    return typeof v === 'object' ? (v.length ? v[0] : '') : v;
  }
  function headline(row) { return row[8] || row[4] || ''; }
  function sortRows() {
    var field = columns[sortCol][0], text = columns[sortCol][1];
    rows.sort(function (a, b) {
      var x = key(a, field), y = key(b, field), c;
      c = text ? (x < y ? -1 : x > y ? 1 : 0) : x - y;
      return c ? c * sortDir : a[0] - b[0];
    });
  }
  function cell(tr, cls) {
    var td = document.createElement('td');
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function draw() {
    var frag = document.createDocumentFragment();
    var start = page * PAGE;
    for (var i = start; i < Math.min(start + PAGE, rows.length); i++) {
      var row = rows[i], tr = document.createElement('tr');
      var a = document.createElement('a');
      a.href = data.href(row[0]);
      a.textContent = row[0];
      cell(tr).appendChild(a);
      cell(tr, 'lbl').textContent = headline(row);
      cell(tr, 'num').textContent = data.pct(row[1]);
      cell(tr, 'num').textContent = String(row[2]);
      cell(tr).textContent = data.flagNames(row[3]);
      frag.appendChild(tr);
    }
    tbody.textContent = '';
    tbody.appendChild(frag);
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    info.textContent = 'features ' + start + '–' + Math.min(start + PAGE, rows.length) + ' of ' + rows.length +
      ' · page ' + (page + 1) + ' / ' + pages;
    // sort and page in the URL (#t=column.direction.page), so Back returns here
    data.hashSet('t', sortCol || sortDir < 0 || page ? sortCol + '.' + sortDir + '.' + page : '');
    prev.disabled = page === 0;
    next.disabled = page + 1 >= pages;
    for (var b = 0; b < buttons.length; b++) {
      if (b === sortCol) buttons[b].setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending');
      else buttons[b].removeAttribute('aria-sort');
    }
  }

  for (var c = 0; c < heads.length; c++) {
    var button = document.createElement('button');
    button.type = 'button';
    button.textContent = heads[c].textContent;
    button.setAttribute('data-col', c);
    button.addEventListener('click', function (e) {
      var col = parseInt(e.currentTarget.getAttribute('data-col'), 10);
      sortDir = col === sortCol ? -sortDir : (columns[col][1] || col === 0 ? 1 : -1);
      sortCol = col;
      page = 0;
      sortRows();
      draw();
    });
    heads[c].textContent = '';
    heads[c].appendChild(button);
    buttons.push(button);
  }
  var pager = document.createElement('nav');
  pager.className = 'pager';
  pager.setAttribute('aria-label', 'table pages');
  var prev = document.createElement('button');
  prev.type = 'button';
  prev.textContent = '← previous';
  var next = document.createElement('button');
  next.type = 'button';
  next.textContent = 'next →';
  var info = document.createElement('span');
  info.className = 'muted';
  pager.appendChild(prev);
  pager.appendChild(info);
  pager.appendChild(next);
  prev.addEventListener('click', function () { if (page > 0) { page--; draw(); } });
  next.addEventListener('click', function () { page++; draw(); });
  table.parentNode.parentNode.insertBefore(pager, table.parentNode.nextSibling);
  var more = document.getElementById('table-more');
  if (more) more.hidden = true;
  var saved = /^(\d+)\.(-?1)\.(\d+)$/.exec(data.hashGet('t') || '');
  if (saved && +saved[1] < columns.length) {
    sortCol = +saved[1];
    sortDir = +saved[2];
    sortRows();
    page = Math.min(+saved[3], Math.max(0, Math.ceil(rows.length / PAGE) - 1));
  }
  draw();  // the rows arrive sorted by id, the initial order
})();
