// commrouter.js: the browser side of commrouter.
//
// One long-lived hub per page, `globalThis.commrouter`, holding one link per kernel (a page may
// show notebooks of several kernels). Widgets and page code use a kernel's link:
//   const k = commrouter.kernel(kernelId)
//   k.send(address, value)
//   const id = k.subscribe(address, (value, address) => ...); k.unsubscribe(id)
//   const v = k.newSyncedVariable(address, initial)
//     v.get(), v.set(value), v.subscribe((value, address) => ...) -> id, v.unsubscribe(id)
// and `commrouter.send/subscribe/unsubscribe/newSyncedVariable` do the same on the link of the
// kernel installed last (the seed's page API). `commrouter.close()` closes every link.
//
// A kernel installs (and re-installs) its own link with `commrouter.install(config)` from its
// transient install display. The link opens its comm over a channel: by default its own WebSocket
// to the server's kernel channels (`SocketChannel`); with the link widget (`frontend/widget.js`,
// an anywidget module) the widget model's custom messages on the page's own kernel connection.
// It opens the comm with the kernel's id (and, if it was linked before, where its numbered stream
// stopped), and waits (bounded) for `#comm_open_ack`. Installing one kernel's link never touches
// another's. The protocol below the channel is the same for both.
//
// Kernel -> page values are numbered; a link takes each number once and in order, and
// acknowledges the highest in-order number with `#ack` (one ack per JS task). Page -> kernel
// sends made in one JS task go as one batch message; while the link is down they wait in a
// bounded queue. A link remembers the last value of each address (bounded), so that a synced
// variable made later (a widget rendered after the value came) starts from it. A read request
// for an address no synced variable holds is answered at once with `read_failed`.
//
// When the kernel lists "kernel subshells" in kernel_info_reply.supported_features (ipykernel 7),
// each WebSocket channel creates a subshell and sends its shell messages with that `subshell_id`: the kernel
// then handles them on the subshell's thread, even while a cell runs on the main shell.
// docs/frontend.md has it all.
(() => {
  "use strict";

  const VERSION = 4;
  const OPEN_ACK = "#comm_open_ack";
  const CONNECT_DELAY_MS = 2000; // a saved widget waits this long for the kernel's install
  const PING = "#heartbeat/ping";
  const PONG = "#heartbeat/pong";
  const ACK = "#ack";
  const QUEUE_LIMIT = 10000; // values waiting while the link is down (config `queue_limit`)
  const BATCH_LIMIT = 1000; // values per page -> kernel batch message
  const MEMORY_LIMIT = 1000; // addresses whose last value a link remembers

  const newId = () =>
    globalThis.crypto && crypto.randomUUID
      ? crypto.randomUUID().replaceAll("-", "")
      : Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");

  function pageConfig() {
    const element = document.getElementById("jupyter-config-data");
    try {
      return element ? JSON.parse(element.textContent) : {};
    } catch (error) {
      return {};
    }
  }

  function channelsUrl(kernelId, sessionId) {
    const config = pageConfig();
    const base = (config.baseUrl || "/").replace(/\/?$/, "/");
    const wsBase = config.wsUrl
      ? config.wsUrl.replace(/\/?$/, "/")
      : `${location.origin.replace(/^http/, "ws")}${base}`;
    const token = config.token || new URLSearchParams(location.search).get("token") || "";
    const query = `session_id=${sessionId}` + (token ? `&token=${encodeURIComponent(token)}` : "");
    return `${wsBase}api/kernels/${encodeURIComponent(kernelId)}/channels?${query}`;
  }

  const isSeq = (n) => Number.isSafeInteger(n) && n >= 1;

  // Values are JSON data: two are the same when they encode the same.
  const same = (a, b) =>
    a === b || (typeof a === "object" && typeof b === "object" && JSON.stringify(a) === JSON.stringify(b));

  function call(callback, ...args) {
    try {
      callback(...args);
    } catch (error) {
      console.error("[commrouter] a subscriber failed:", error);
    }
  }

  class SyncedVariable {
    constructor(link, address, value) {
      this.link = link;
      this.address = address;
      this.value = value;
      this.callbacks = new Map();
    }
    get() {
      return this.value;
    }
    // Sends `value` and tells local subscribers; the same value again sends nothing.
    set(value) {
      if (same(value, this.value)) return;
      this.value = value;
      this.link.send(this.address, value);
      this.notify(value);
    }
    subscribe(callback) {
      const id = this.link.hub.nextId++;
      this.callbacks.set(id, callback);
      return id;
    }
    unsubscribe(id) {
      this.callbacks.delete(id);
    }
    receive(value) {
      this.value = value;
      this.notify(value);
    }
    notify(value) {
      for (const callback of this.callbacks.values()) call(callback, value, this.address);
    }
  }

  // A link's channel carries its comm. Two kinds: `SocketChannel` (below: the link's own
  // WebSocket to the server's kernel channels, used by the install script) and the widget channel
  // (`frontend/widget.js`: custom messages of the link widget's model, on the page's own kernel
  // connection). A channel has:
  //   open()        sends the comm open with `link.openData()`, then calls `link.openSent(this)`
  //   send(data)    one comm message's data (`{address, value}`, a batch, an #ack ...)
  //   close()       closes the comm (the page ends the link)
  //   release()     stops using the channel (the link drops it or opens again)
  //   ready         true while `send` reaches the kernel
  // and calls `link.channelReceived(this, data)` for each comm message of its comm, and
  // `link.channelClosed(this, reason, retry)` when the comm or its connection ended.
  class SocketChannel {
    constructor(link) {
      this.link = link;
      this.ws = null;
      this.commId = null;
      this.subshellId = null; // the link's kernel subshell, when the kernel has them
      this.replies = new Map(); // msg_id -> resolve, for the channel's own requests
    }

    get ready() {
      return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
    }

    open() {
      const link = this.link;
      const ws = new WebSocket(channelsUrl(link.kernelId, link.hub.sessionId));
      const commId = newId();
      this.ws = ws;
      this.commId = commId;
      ws.onopen = () =>
        this.useSubshell(ws).then(() => {
          if (this.ws !== ws) return;
          const data = link.openData();
          link.log("websocket open; comm_open", commId, "subshell", this.subshellId, "resume", data.resume);
          this.shell("comm_open", { comm_id: commId, target_name: link.targetName, data });
          link.openSent(this);
        });
      ws.onmessage = (event) => this.receive(ws, event);
      ws.onclose = () => {
        if (this.ws !== ws) return;
        link.log("websocket closed");
        link.channelClosed(this, "websocket closed", true);
      };
      ws.onerror = () => link.log("websocket error");
    }

    send(data) {
      this.shell("comm_msg", { comm_id: this.commId, data });
    }

    close() {
      if (this.ready && this.commId) this.shell("comm_close", { comm_id: this.commId, data: {} });
      this.release();
    }

    release() {
      const ws = this.ws;
      if (ws && ws.readyState === WebSocket.OPEN && this.subshellId) {
        this.wire(ws, "control", "delete_subshell_request", { subshell_id: this.subshellId });
      }
      this.subshellId = null;
      this.ws = null;
      if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    }

    // Asked on control: on shell the request would wait behind a running cell.
    async useSubshell(ws) {
      this.subshellId = null;
      const info = await this.request(ws, "control", "kernel_info_request", {});
      const features = (info && info.content && info.content.supported_features) || [];
      if (!features.includes("kernel subshells")) return;
      const reply = await this.request(ws, "control", "create_subshell_request", {});
      if (reply && reply.content && reply.content.status === "ok" && this.ws === ws) {
        this.subshellId = reply.content.subshell_id;
      }
    }

    // A request on the channel's socket; resolves with the reply, or null after a bounded wait.
    request(ws, channel, msgType, content) {
      return new Promise((resolve) => {
        const msgId = this.wire(ws, channel, msgType, content);
        const timer = setTimeout(() => {
          this.replies.delete(msgId);
          resolve(null);
        }, this.link.openAckTimeout);
        this.replies.set(msgId, (reply) => {
          clearTimeout(timer);
          resolve(reply);
        });
      });
    }

    shell(msgType, content) {
      this.wire(this.ws, "shell", msgType, content, this.subshellId);
    }

    wire(ws, channel, msgType, content, subshellId = null) {
      const header = {
        msg_id: newId(),
        msg_type: msgType,
        username: "commrouter",
        session: this.link.hub.sessionId,
        date: new Date().toISOString(),
        version: "5.3",
      };
      if (subshellId) header.subshell_id = subshellId;
      ws.send(JSON.stringify({ channel, header, parent_header: {}, metadata: {}, content, buffers: [] }));
      return header.msg_id;
    }

    receive(ws, event) {
      if (ws !== this.ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      const answered = this.replies.get((message.parent_header || {}).msg_id);
      if (answered && message.channel !== "iopub") {
        this.replies.delete(message.parent_header.msg_id);
        answered(message);
        return;
      }
      if (message.channel !== "iopub") return;
      const content = message.content || {};
      if (content.comm_id !== this.commId) return;
      if (message.msg_type === "comm_close") {
        this.link.log("comm closed by the kernel");
        this.link.channelClosed(this, "comm closed by the kernel", false);
        return;
      }
      if (message.msg_type === "comm_msg") this.link.channelReceived(this, content.data || {});
    }
  }

  // One kernel's link: its channel, numbering, acks, queue, subscriptions, synced variables and
  // remembered values. `commrouter.kernel(id)` returns it.
  class Link {
    constructor(hub, kernelId) {
      this.hub = hub;
      this.kernelId = kernelId;
      this.debug = false;
      this.targetName = "commrouter";
      this.openAckTimeout = 2000;
      this.queueLimit = QUEUE_LIMIT;
      this.installed = false; // the kernel installed this link at least once
      this.channel = null; // the channel in use (null while the link is down)
      this.makeChannel = () => new SocketChannel(this); // a new channel for each open
      this.transport = "socket"; // or "widget": what the last install gave the link
      this.opened = false;
      this.subscriptions = new Map(); // address -> Map(id -> callback)
      this.synced = new Map(); // address -> SyncedVariable
      this.memory = new Map(); // address -> last value (insertion order: least recent first)
      this.ackTimer = null;
      this.opening = false; // a comm open was sent and its #comm_open_ack is awaited
      this.retryTimer = null;
      this.attempts = 0;
      // kernel -> page: the stream the kernel numbers its values in and the highest number
      // received in order ({stream, seq}). `known` outlives a comm (for `resume`); `position`
      // is null until this comm's #comm_open_ack says where the stream stands.
      this.known = null;
      this.position = null;
      this.ackDue = false; // an #ack is scheduled for the end of this task
      this.ackGap = false; // ... and this task saw a message skip a number
      // page -> kernel: items not yet sent (the whole queue is sent at the end of the task while
      // the link is open; at most `queueLimit` wait while it is down)
      this.queue = [];
      this.flushDue = false;
      this.overflowing = false; // one console.warn per overflow episode
      this.counters = {
        received: 0, // numbered values and read requests taken (dispatched)
        duplicates: 0, // numbered items ignored: already received
        gaps: 0, // messages ignored: their first new number skipped ahead
        acks: 0, // #ack messages sent
        sent: 0, // values sent to the kernel
        batches: 0, // page -> kernel batch messages
        dropped: 0, // values dropped from the full queue while the link was down
        readFailed: 0, // read requests answered with read_failed (no synced variable)
      };
      this.onValue = null; // called with (address, value) for each value received (widget state)
    }

    log(...args) {
      if (this.debug) console.log("[commrouter]", this.kernelId, ...args);
    }

    get linkOpen() {
      return this.opened && this.channel !== null && this.channel.ready;
    }

    // Up or on its way up: open, awaiting its #comm_open_ack, or waiting to retry. Not after
    // the kernel closed the comm or the link gave up (a saved widget's `connect` links again).
    get live() {
      return this.channel !== null && (this.opened || this.opening || this.retryTimer !== null);
    }

    get subshellId() {
      return (this.channel && this.channel.subshellId) || null;
    }

    // -------------------------------------------------------------- link lifecycle

    // `channel` (optional): the one channel this link uses from now on (the widget's);
    // without it, each open makes a new WebSocket channel.
    install(config, channel = null) {
      this.debug = Boolean(config.debug);
      this.targetName = config.target_name || this.targetName;
      this.openAckTimeout = Math.round((config.open_ack_timeout || 2) * 1000);
      this.queueLimit = config.queue_limit || QUEUE_LIMIT;
      this.makeChannel = channel ? () => channel : () => new SocketChannel(this);
      this.transport = channel ? "widget" : "socket";
      this.installed = true;
      this.attempts = 0;
      this.openLink();
    }

    openLink() {
      this.dropLink();
      const channel = this.makeChannel();
      this.channel = channel;
      this.position = null;
      channel.open();
    }

    // What the comm open carries: the kernel's id and, if linked before, where its stream stopped.
    openData() {
      const data = { kernel_id: this.kernelId };
      if (this.known) data.resume = { stream: this.known.stream, seq: this.known.seq };
      return data;
    }

    // The channel sent the comm open: the kernel's #comm_open_ack is awaited (bounded).
    openSent(channel) {
      if (channel !== this.channel) return;
      clearTimeout(this.ackTimer);
      this.ackTimer = setTimeout(() => this.retry("no #comm_open_ack"), this.openAckTimeout);
      this.opening = true;
    }

    channelClosed(channel, reason, retry) {
      if (channel !== this.channel) return;
      this.opened = false;
      if (retry) this.retry(reason);
    }

    channelReceived(channel, data) {
      if (channel !== this.channel || !data || typeof data !== "object") return;
      if (data.seq === undefined) this.dispatch(data); // unnumbered: open ack, pings
      else this.receiveNumbered(data);
    }

    retry(reason) {
      clearTimeout(this.ackTimer);
      this.opening = false;
      if (this.attempts >= 3) {
        this.log("giving up:", reason, "(the kernel re-installs on its next use)");
        this.dropLink();
        return;
      }
      const delay = 500 * 2 ** this.attempts++;
      this.log(reason, "- retrying in", delay, "ms");
      const channel = this.channel;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        // a late ack may have opened this very link meanwhile: then there is nothing to retry
        if (this.channel === channel && !this.opened) this.openLink();
      }, delay);
    }

    dropLink() {
      clearTimeout(this.ackTimer);
      this.opening = false;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const channel = this.channel;
      this.channel = null;
      this.opened = false;
      if (channel) channel.release();
    }

    close() {
      const channel = this.channel;
      if (channel) {
        this.channel = null;
        channel.close();
      }
      this.dropLink();
    }

    commMsg(data) {
      this.channel.send(data);
    }

    // A numbered message: one item numbered `seq`, or a batch whose items are numbered `seq`,
    // `seq + 1`, ... Items already received are ignored; the first new one must be the next
    // number, or the rest of the message is ignored (the kernel sends it again after our ack).
    receiveNumbered(data) {
      const position = this.position;
      if (!position || !isSeq(data.seq)) {
        this.log("numbered message ignored:", position ? "bad seq" : "no stream yet", data.seq);
        return;
      }
      const items = Array.isArray(data.batch) ? data.batch : [data];
      for (let i = 0; i < items.length; i++) {
        const seq = data.seq + i;
        if (seq <= position.seq) {
          this.counters.duplicates++;
          continue;
        }
        if (seq > position.seq + 1) {
          this.counters.gaps++;
          this.log("gap: got", seq, "after", position.seq, "- ignored, acking again");
          this.ackGap = true;
          break;
        }
        position.seq = seq;
        this.counters.received++;
        this.dispatch(items[i] || {});
      }
      this.scheduleAck();
    }

    // One #ack per JS task: every message received in this task is processed first.
    scheduleAck() {
      if (this.ackDue) return;
      this.ackDue = true;
      setTimeout(() => {
        this.ackDue = false;
        const gap = this.ackGap;
        this.ackGap = false;
        if (!this.linkOpen || !this.position) return;
        this.counters.acks++;
        // `gap`: a number was skipped, send again from here (not for a resend taken twice)
        this.commMsg(gap ? { address: ACK, value: this.position.seq, gap } : { address: ACK, value: this.position.seq });
      }, 0);
    }

    openAcked(value) {
      clearTimeout(this.ackTimer);
      this.opening = false;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const ack = value && typeof value === "object" ? value : {};
      const first = isSeq(ack.seq) ? ack.seq : 1;
      const known = this.known;
      // the same stream: keep what was received (the kernel may send some of it again); a
      // new stream (a new kernel, a restarted one, a first link) starts where the kernel says
      const seq = known && known.stream === ack.stream ? Math.max(known.seq, first - 1) : first - 1;
      this.position = { stream: ack.stream, seq };
      this.known = this.position;
      this.opened = true;
      this.attempts = 0;
      this.overflowing = false;
      this.log("link open at", seq, "of stream", ack.stream, "; sending", this.queue.length);
      this.flush();
    }

    dispatch(data) {
      const address = data.address;
      if (address === OPEN_ACK) {
        this.openAcked(data.value);
        return;
      }
      if (address === PING) {
        this.commMsg({ address: PONG, value: data.value }); // at once, with the ping's number
        return;
      }
      if (address === PONG) return;
      if (data.read_request) {
        const variable = this.synced.get(address);
        if (variable) {
          this.enqueue({ address, value: variable.get() });
        } else {
          // nothing on this page holds it: say so at once rather than let the read time out
          this.counters.readFailed++;
          this.enqueue({ address, read_failed: `no synced variable for ${address} on this page` });
        }
        return;
      }
      this.log("received", address, data.value);
      this.remember(address, data.value);
      if (this.onValue) call(this.onValue, address, data.value);
      const variable = this.synced.get(address);
      if (variable) variable.receive(data.value);
      const callbacks = this.subscriptions.get(address);
      if (callbacks) for (const callback of callbacks.values()) call(callback, data.value, address);
    }

    remember(address, value) {
      if (typeof address !== "string" || address.startsWith("#")) return;
      this.memory.delete(address); // the most recent goes last
      this.memory.set(address, value);
      if (this.memory.size > MEMORY_LIMIT) this.memory.delete(this.memory.keys().next().value);
    }

    // Puts one item (a value, a read answer) in the queue: sent at the end of this task while
    // the link is open; while it is down, at most `queueLimit` wait (the oldest are dropped).
    enqueue(item) {
      this.queue.push(item);
      if (this.linkOpen) {
        if (!this.flushDue) {
          this.flushDue = true;
          queueMicrotask(() => this.flush()); // at the end of this task: one message
        }
        return;
      }
      if (this.queue.length > this.queueLimit) {
        const dropped = this.queue.length - this.queueLimit;
        this.queue.splice(0, dropped); // the oldest: the newest value of an address matters
        this.counters.dropped += dropped;
        if (!this.overflowing) {
          this.overflowing = true;
          console.warn(
            `[commrouter] the link is down and ${this.queueLimit} values wait: dropping the ` +
              "oldest (commrouter.counters.dropped counts them)",
          );
        }
      }
    }

    // Sends every queued item: one message in the single form, or batches of them.
    flush() {
      this.flushDue = false;
      if (!this.linkOpen) return;
      while (this.queue.length > 0) {
        const items = this.queue.splice(0, BATCH_LIMIT);
        if (items.length === 1) {
          this.commMsg(items[0]);
        } else {
          this.commMsg({ batch: items });
          this.counters.batches++;
        }
        this.counters.sent += items.length;
      }
    }

    // ---------------------------------------------------------------- public API

    send(address, value) {
      this.remember(address, value);
      this.enqueue({ address, value });
    }

    subscribe(address, callback) {
      const id = this.hub.nextId++;
      if (!this.subscriptions.has(address)) this.subscriptions.set(address, new Map());
      this.subscriptions.get(address).set(id, callback);
      return id;
    }

    unsubscribe(id) {
      let found = false;
      for (const [address, callbacks] of this.subscriptions) {
        if (callbacks.delete(id)) {
          found = true;
          if (callbacks.size === 0) this.subscriptions.delete(address);
        }
      }
      return found;
    }

    // The variable for `address` (one per address per link; a second call returns the first and
    // ignores its `initial`). A new variable starts from the value this link last saw for the
    // address, if any; else from `initial`, which it sends (unless `options.send === false`:
    // widgets, whose program already has the value, pass it).
    newSyncedVariable(address, initial, options = {}) {
      let variable = this.synced.get(address);
      if (variable) return variable;
      const remembered = this.memory.has(address);
      variable = new SyncedVariable(this, address, remembered ? this.memory.get(address) : initial);
      this.synced.set(address, variable);
      if (!remembered && initial !== undefined && options.send !== false) this.send(address, initial);
      return variable;
    }

    // Takes over what page code did on a link before any kernel installed one.
    merge(other) {
      for (const [address, callbacks] of other.subscriptions) {
        if (!this.subscriptions.has(address)) this.subscriptions.set(address, new Map());
        for (const [id, callback] of callbacks) this.subscriptions.get(address).set(id, callback);
      }
      for (const [address, variable] of other.synced) {
        if (this.synced.has(address)) continue;
        variable.link = this;
        this.synced.set(address, variable);
      }
      this.queue = other.queue.concat(this.queue);
    }

    // What an older hub's link held: its subscriptions, synced variables and stream position.
    adopt(old) {
      if (old.subscriptions instanceof Map) this.subscriptions = old.subscriptions;
      if (old.synced instanceof Map) this.synced = old.synced;
      if (old.memory instanceof Map) this.memory = old.memory;
      for (const variable of this.synced.values()) {
        Object.setPrototypeOf(variable, SyncedVariable.prototype); // widgets keep their objects
        delete variable.hub;
        variable.link = this;
      }
      const known = old.known || (old.streams instanceof Map && old.streams.get(old.kernelId));
      if (known && typeof known.stream === "string" && isSeq(known.seq)) {
        this.known = { stream: known.stream, seq: known.seq };
      }
    }
  }

  class Hub {
    constructor() {
      this.version = VERSION;
      this.sessionId = newId();
      this.links = new Map(); // kernel id -> Link
      this.current = null; // the link of the kernel installed last (the top-level API's)
      this.nextId = 1; // subscription ids, unique in the page
      this.widgetRoots = new Map(); // widget key -> its live element on this page (mountWidget)
    }

    // The link of `kernelId` (made, not yet installed, on first use: sends wait in its queue
    // until the kernel installs it). Without an id: the top-level API's link.
    kernel(kernelId) {
      if (!kernelId) return this.currentLink();
      let link = this.links.get(kernelId);
      if (!link) {
        link = new Link(this, kernelId);
        this.links.set(kernelId, link);
      }
      return link;
    }

    // The link of the kernel installed last; before any install, a link without a kernel that
    // the first install takes over (page code may subscribe before the kernel installs).
    currentLink() {
      if (!this.current) this.current = new Link(this, null);
      return this.current;
    }

    // Called by a kernel's install script, or by the link widget with its `channel`: (re)installs
    // that kernel's link, and only that one.
    install(config, channel = null) {
      const kernelId = config.kernel_id;
      const unbound = this.current && this.current.kernelId === null ? this.current : null;
      let link = this.links.get(kernelId);
      if (!link && unbound) {
        unbound.kernelId = kernelId; // the first install takes over what page code did before
        this.links.set(kernelId, unbound);
        link = unbound;
      } else if (unbound) {
        link.merge(unbound);
      }
      link = link || this.kernel(kernelId);
      this.current = link;
      link.install(config, channel);
      return link;
    }

    // Called by a saved widget display as it is rendered (a reloaded page, a second tab, the
    // live page itself): links that kernel unless this page's link to it is live. On the live
    // page the kernel's own install script follows the first widget at once, so this waits
    // CONNECT_DELAY_MS for it before linking by itself. The kernel sends a new window the
    // current state of every address.
    connect(config) {
      // with the link widget (ipykernel's widget transport) the widget manager links the page
      // from its restore of the widget's model: nothing to connect here
      if (config.transport === "widget") return;
      setTimeout(() => {
        const link = this.links.get(config.kernel_id);
        if (link && link.installed && link.live) return;
        this.install(config);
      }, CONNECT_DELAY_MS);
    }

    send(address, value) {
      this.currentLink().send(address, value);
    }

    subscribe(address, callback) {
      return this.currentLink().subscribe(address, callback);
    }

    unsubscribe(id) {
      const links = new Set([...this.links.values(), this.currentLink()]);
      for (const link of links) if (link.unsubscribe(id)) return;
    }

    newSyncedVariable(address, initial, options) {
      return this.currentLink().newSyncedVariable(address, initial, options);
    }

    close() {
      for (const link of new Set([...this.links.values(), this.current])) if (link) link.close();
    }

    call(callback, ...args) {
      call(callback, ...args);
    }

    // A widget's script calls this with its element (`root`) and the widget's key. The program
    // re-renders a widget's display now and then so that the saved notebook holds its last
    // state; on this page the element rendered before is live (bound, maybe focused, maybe
    // half-typed in), so while it is detached by the re-render it is put back in place of the
    // new one, with its focus: the new HTML is for the saved notebook. Returns true when `root`
    // is the one to bind. An ended widget's render always stays (it binds nothing).
    mountWidget(key, root, ended = false) {
      const old = this.widgetRoots.get(key);
      if (ended) {
        this.widgetRoots.delete(key);
        return false;
      }
      if (old && old !== root && !old.isConnected) {
        root.replaceWith(old);
        if (old.commrouterFocus) old.commrouterFocus.focus({ preventScroll: true });
        return false;
      }
      this.widgetRoots.set(key, root);
      root.addEventListener("focusin", (event) => {
        root.commrouterFocus = event.target;
      });
      root.addEventListener("focusout", () =>
        setTimeout(() => {
          // moved elsewhere by the user (not detached by a re-render): forget it
          if (root.isConnected && !root.contains(document.activeElement)) root.commrouterFocus = null;
        }, 0),
      );
      return true;
    }

    // The current link's state, as the one-kernel hub had it.
    get kernelId() {
      return this.current ? this.current.kernelId : null;
    }
    get opened() {
      return Boolean(this.current && this.current.opened);
    }
    get counters() {
      return this.currentLink().counters;
    }
    get subshellId() {
      return this.current ? this.current.subshellId : null;
    }
    get attempts() {
      return this.current ? this.current.attempts : 0;
    }

    // A newer commrouter.js replacing an older hub (version 2: one link; 3: one per kernel; 4:
    // channels)
    // keeps the page's widgets bound.
    adopt(old) {
      const olds = old.links instanceof Map ? [...old.links.values()] : [old];
      if (old.links instanceof Map && old.current && old.current.kernelId === null) olds.push(old.current);
      for (const previous of olds) {
        const link = previous.kernelId ? this.kernel(previous.kernelId) : this.currentLink();
        link.adopt(previous);
        if (previous === old.current || previous === old) this.current = link;
      }
      this.nextId = Math.max(this.nextId, old.nextId || 1);
    }
  }

  const existing = globalThis.commrouter;
  if (!existing || existing.version !== VERSION) {
    const hub = new Hub();
    if (existing) {
      if (existing.close) existing.close();
      hub.adopt(existing);
    }
    globalThis.commrouter = hub;
  }
  const pending = globalThis.commrouterPending || [];
  globalThis.commrouterPending = [];
  for (const callback of pending) call(callback, globalThis.commrouter);
})();
