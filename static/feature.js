/* saesite: feature pages: j / → next feature, k / ← previous, and a copy-link button.
   The pages work without this script; it only adds convenience, so it also adds the button,
   the key hint and the link field (pages do not carry hidden UI). */
(function () {
  'use strict';
  var prev = document.getElementById('prev');
  var next = document.getElementById('next');
  var nav = document.querySelector('.feature-nav');
  if (!nav) return;
  nav.insertAdjacentHTML('beforeend', '<button id="copy-link" type="button">Copy link</button>' +
    '<span class="muted keys" id="key-hint"><kbd>j</kbd>/<kbd>k</kbd> next/previous</span>');
  nav.insertAdjacentHTML('afterend', '<p id="copy-out" class="copy-out" hidden><label>Link ' +
    '<input id="copy-url" type="text" readonly></label> <span id="copy-status" aria-live="polite"></span></p>');
  document.addEventListener('keydown', function (e) {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    var link = null;
    if (e.key === 'j' || e.key === 'ArrowRight') link = next;
    else if (e.key === 'k' || e.key === 'ArrowLeft') link = prev;
    if (link) {
      e.preventDefault();
      location.href = link.href;
    }
  });

  var button = document.getElementById('copy-link');
  var out = document.getElementById('copy-out');
  var field = document.getElementById('copy-url');
  var status = document.getElementById('copy-status');
  var canonical = document.querySelector('link[rel=canonical]');
  button.addEventListener('click', function () {
    // the hosted address when the site was built with --base-url (the canonical link), else
    // this page's own (a file:// or relative-host link that opens it again from the same place)
    var url = (canonical ? canonical.getAttribute('href') : location.href.replace(/#.*$/, '')) + location.hash;
    // the link is always shown, selected, so it can be copied by hand where the clipboard
    // is not allowed (file://, old browsers)
    field.value = url;
    out.hidden = false;
    field.focus();
    field.select();
    status.textContent = 'Press Ctrl+C (⌘C) to copy.';
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(function () {
        status.textContent = 'Copied.';
      }, function () { /* permission refused: the selected field is the fallback */ });
    }
  });
})();
