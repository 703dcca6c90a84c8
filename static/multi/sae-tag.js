/* saesite, multi-SAE overview: loaded after one SAE's search shards, marks those shards (the
   ones not marked yet) with that SAE's number, read from this script element's data-sae. */
(function () {
  'use strict';
  var data = window.SAESITE_INDEX;
  var sae = parseInt(document.currentScript.getAttribute('data-sae'), 10);
  if (!data) return;
  for (var s = 0; s < data.shards.length; s++) {
    if (data.shards[s].sae === undefined) data.shards[s].sae = sae;
  }
})();
