/* Persona browser SDK: plain JavaScript, no build step.
 *
 *   persona.init({endpoint: "https://persona.example.com", key: "<publishable key>"});
 *   persona.identify("customer-42", {hash: "<from your backend>"});  // optional; else "anon-<uuid>"
 *   persona.track("product_view", {product_id: "p1", price: 9.5});
 *
 * Identity verification: when the server has an identity secret, events of a signed-in
 * customer need hash = hex HMAC-SHA256(identity secret, customer id), computed by the
 * shop's backend and written into the page; it goes with each request as ?identity_hash=.
 * Every request carries events of one customer only (the queue is sent in runs of one
 * customer id), as the server requires. Anonymous ids ("anon-" + uuid) need no hash.
 * Purchases are sent by the shop's backend with a server key, not from here, and so is the
 * alias that merges the anonymous id (persona.customerId() before identify) into the
 * customer at sign-in.
 *
 * Events are batched in memory and sent to POST {endpoint}/v1/events every
 * flushIntervalMs, when maxBatch events wait, and with navigator.sendBeacon when the
 * page is hidden. Bodies are text/plain JSON arrays and the key goes in ?key= (an
 * ingest-only, publishable key): that is a CORS "simple" request, so no preflight, and
 * it is what sendBeacon can send. Each event gets its event_id here, so a retry after a
 * failure (backoff with jitter) is deduplicated by the server. Nothing in here ever
 * throws into the host page.
 *
 * Read your writes: each accepted batch's answer carries a token; persona.lastToken()
 * (the current customer's, or lastToken(id)) gives the latest, and init({onToken:
 * function (token, customerId, eventIds) {...}}) hears each one. The shop's backend passes
 * it as ?after= to a read so the answer reflects those events. Beacon sends have none.
 */
(function (global) {
  "use strict";
  var cfg = null, queue = [], customerId = null, sessionId = null, timer = null, hashes = {};
  var inflight = null, failures = 0, retryAt = 0, tokens = {};
  var stats = {queued: 0, sent: 0, dropped: 0, failures: 0};

  function warn(msg, err) {
    try { if (cfg && cfg.debug && global.console) console.warn("[persona] " + msg, err || ""); } catch (e) { /* ignore */ }
  }
  function guard(fn) {
    return function () {
      try { return fn.apply(null, arguments); } catch (e) { warn("error", e); }
    };
  }
  function uuid() {
    var c = global.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (ch) {
      var r = Math.random() * 16 | 0;
      return (ch === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }
  function stored(storage, name, make) {
    try {
      var v = global[storage].getItem(name);
      if (!v) { v = make(); global[storage].setItem(name, v); }
      return v;
    } catch (e) { return make(); }
  }
  function url(cid) {
    var u = cfg.endpoint.replace(/\/+$/, "") + "/v1/events?key=" + encodeURIComponent(cfg.key);
    return hashes[cid] ? u + "&identity_hash=" + encodeURIComponent(hashes[cid]) : u;
  }
  /* The next batch: the leading run of one customer's events, at most maxBatch. */
  function nextBatch() {
    var n = 0;
    while (n < queue.length && n < cfg.maxBatch && queue[n].customer_id === queue[0].customer_id) n++;
    return queue.slice(0, n);
  }

  function init(options) {
    options = options || {};
    if (!options.endpoint || !options.key) { warn("init needs endpoint and key"); return; }
    cfg = {
      endpoint: String(options.endpoint), key: String(options.key), debug: !!options.debug,
      flushIntervalMs: options.flushIntervalMs || 2000, maxBatch: options.maxBatch || 100,
      maxQueue: options.maxQueue || 1000, maxBackoffMs: options.maxBackoffMs || 30000,
      onToken: typeof options.onToken === "function" ? options.onToken : null
    };
    customerId = customerId || stored("localStorage", "persona.customer_id",
                                      function () { return "anon-" + uuid(); });
    try {
      var h = global.localStorage.getItem("persona.identity_hash");
      if (h && !hashes[customerId]) hashes[customerId] = h;
    } catch (e) { /* private mode */ }
    sessionId = stored("sessionStorage", "persona.session_id", uuid);
    if (timer) clearInterval(timer);
    timer = setInterval(guard(flush), cfg.flushIntervalMs);
    if (global.addEventListener) {
      global.addEventListener("pagehide", guard(beacon));
      global.document && document.addEventListener("visibilitychange", guard(function () {
        if (document.visibilityState === "hidden") beacon();
      }));
    }
  }

  /* identify(id, {hash}): hash is what the shop's backend computed for this id. */
  function identify(id, options) {
    if (!id) return;
    customerId = String(id);
    var hash = options && options.hash ? String(options.hash) : null;
    if (hash) hashes[customerId] = hash; else delete hashes[customerId];
    try {
      global.localStorage.setItem("persona.customer_id", customerId);
      if (hash) global.localStorage.setItem("persona.identity_hash", hash);
      else global.localStorage.removeItem("persona.identity_hash");
    } catch (e) { /* private mode */ }
  }

  function track(type, fields) {
    if (!cfg) { warn("track before init"); return; }
    var ev = {}, k;
    for (k in (fields || {})) if (Object.prototype.hasOwnProperty.call(fields, k)) ev[k] = fields[k];
    ev.type = String(type); ev.event_id = uuid(); ev.customer_id = customerId;
    ev.session_id = sessionId; ev.ts = Date.now(); ev.v = 1;
    queue.push(ev); stats.queued++;
    if (queue.length > cfg.maxQueue) { queue.splice(0, queue.length - cfg.maxQueue); stats.dropped++; }
    if (queue.length >= cfg.maxBatch) flush();
    return ev.event_id;
  }

  /* The token of an accepted batch (one customer's events). */
  function accepted(body, batch) {
    var token = body && body.token, cid = batch[0].customer_id;
    if (typeof token !== "string") return;
    tokens[cid] = token;
    if (cfg.onToken) {
      try { cfg.onToken(token, cid, batch.map(function (ev) { return ev.event_id; })); }
      catch (e) { warn("onToken failed", e); }
    }
  }

  /* Back off with jitter; never sooner than the server's Retry-After (429, 503), if readable. */
  function retryLater(batch, retryAfterS) {
    queue = batch.concat(queue).slice(0, cfg.maxQueue);
    failures++; stats.failures++;
    var wait = Math.min(cfg.maxBackoffMs, 500 * Math.pow(2, failures - 1));
    wait = wait / 2 + Math.random() * wait / 2;
    var after = parseInt(retryAfterS, 10);
    if (after > 0) wait = Math.max(wait, Math.min(cfg.maxBackoffMs, after * 1000));
    retryAt = Date.now() + wait;
  }

  /* Send what waits, one request per run of one customer's events; resolves when done
   * or after a failure (then retried with backoff); never rejects. */
  function flush() {
    if (!cfg || inflight) return inflight || Promise.resolve();
    if (!queue.length || Date.now() < retryAt || typeof fetch !== "function") return Promise.resolve();
    var batch = nextBatch(), body = JSON.stringify(batch), more = false;
    queue.splice(0, batch.length);
    inflight = fetch(url(batch[0].customer_id), {
      method: "POST", body: body, headers: {"Content-Type": "text/plain"},
      credentials: "omit", keepalive: body.length < 60000
    }).then(function (r) {
      if (r.status === 202) {
        failures = 0; retryAt = 0; stats.sent += batch.length; more = true;
        return r.json().then(function (b) { accepted(b, batch); }, function () { /* no token */ });
      }
      else if (r.status >= 500 || r.status === 429 || r.status === 408)
        retryLater(batch, r.headers && r.headers.get("Retry-After"));
      else { stats.dropped += batch.length; more = true; warn("events rejected with " + r.status); }
    }, function (err) { retryLater(batch); warn("send failed", err); })
      .then(function () {  // then the next customer's run, if any waits
        inflight = null; return more && queue.length ? flush() : undefined;
      }, function () { inflight = null; });
    return inflight;
  }

  /* Page is going away: hand everything to the browser (sendBeacon survives unload). */
  function beacon() {
    if (!cfg || !queue.length) return;
    var nav = global.navigator;
    while (queue.length) {
      var batch = nextBatch();
      var ok = nav && nav.sendBeacon &&
        nav.sendBeacon(url(batch[0].customer_id), new Blob([JSON.stringify(batch)], {type: "text/plain"}));
      if (!ok) return;  // stays queued; the next flush or page load retries
      queue.splice(0, batch.length); stats.sent += batch.length;
    }
  }

  global.persona = {
    init: guard(init), identify: guard(identify), track: guard(track),
    flush: function () { try { return flush(); } catch (e) { warn("error", e); return Promise.resolve(); } },
    customerId: function () { return customerId; },
    lastToken: function (id) { return tokens[id === undefined ? customerId : id] || null; },
    sessionId: function () { return sessionId; },
    stats: function () { return {queued: stats.queued, sent: stats.sent, dropped: stats.dropped,
                                 failures: stats.failures, pending: queue.length}; }
  };
})(typeof window !== "undefined" ? window : this);
