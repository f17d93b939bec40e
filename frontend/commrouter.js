// commrouter.js: the browser side of commrouter.
//
// One long-lived hub per page, `globalThis.commrouter`. Widgets and page code use it:
//   commrouter.send(address, value)
//   const id = commrouter.subscribe(address, value => ...); commrouter.unsubscribe(id)
//   const v = commrouter.newSyncedVariable(address, initial)
//     v.get(), v.set(value), v.subscribe(cb) -> id, v.unsubscribe(id)
//   commrouter.close()
// The kernel installs (and re-installs) the link with `commrouter.install(config)` from its
// transient install display. The hub opens its own WebSocket to the server's kernel channels,
// opens the comm with the kernel's id, and waits (bounded) for `#comm_open_ack`. Sends made
// before the link is up wait in order. A new install for another kernel (a restart) replaces
// the link but keeps every subscription and synced variable, so widgets keep working.
// When the kernel lists "kernel subshells" in kernel_info_reply.supported_features (ipykernel 7),
// each link creates a subshell and sends its shell messages with that `subshell_id`: the kernel
// then handles them on the subshell's thread, even while a cell runs on the main shell.
(() => {
  "use strict";

  const VERSION = 1;
  const OPEN_ACK = "#comm_open_ack";
  const PING = "#heartbeat/ping";
  const PONG = "#heartbeat/pong";

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

  class SyncedVariable {
    constructor(hub, address, initial) {
      this.hub = hub;
      this.address = address;
      this.value = initial;
      this.callbacks = new Map();
    }
    get() {
      return this.value;
    }
    set(value) {
      this.value = value;
      this.hub.send(this.address, value);
      this.notify(value);
    }
    subscribe(callback) {
      const id = this.hub.nextId++;
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
      for (const callback of this.callbacks.values()) this.hub.call(callback, value);
    }
  }

  class Hub {
    constructor() {
      this.version = VERSION;
      this.debug = false;
      this.kernelId = null;
      this.targetName = "commrouter";
      this.openAckTimeout = 2000;
      this.sessionId = newId();
      this.ws = null;
      this.commId = null;
      this.opened = false;
      this.queue = [];
      this.subscriptions = new Map(); // address -> Map(id -> callback)
      this.synced = new Map(); // address -> SyncedVariable
      this.nextId = 1;
      this.ackTimer = null;
      this.retryTimer = null;
      this.attempts = 0;
      this.subshellId = null; // the link's kernel subshell, when the kernel has them
      this.replies = new Map(); // msg_id -> resolve, for the link's own requests
    }

    log(...args) {
      if (this.debug) console.log("[commrouter]", ...args);
    }

    call(callback, value) {
      try {
        callback(value);
      } catch (error) {
        console.error("[commrouter] a subscriber failed:", error);
      }
    }

    // -------------------------------------------------------------- link lifecycle

    install(config) {
      this.debug = Boolean(config.debug);
      this.targetName = config.target_name || this.targetName;
      this.openAckTimeout = Math.round((config.open_ack_timeout || 2) * 1000);
      if (config.kernel_id !== this.kernelId) {
        this.log("installing for kernel", config.kernel_id, "replacing", this.kernelId);
        this.kernelId = config.kernel_id;
      }
      this.attempts = 0;
      this.openLink();
    }

    openLink() {
      this.dropLink();
      const ws = new WebSocket(channelsUrl(this.kernelId, this.sessionId));
      const commId = newId();
      this.ws = ws;
      this.commId = commId;
      ws.onopen = () =>
        this.useSubshell(ws).then(() => {
          if (this.ws !== ws) return;
          this.log("websocket open; comm_open", commId, "subshell", this.subshellId);
          this.shell("comm_open", {
            comm_id: commId,
            target_name: this.targetName,
            data: { kernel_id: this.kernelId },
          });
          this.ackTimer = setTimeout(() => this.retry("no #comm_open_ack"), this.openAckTimeout);
        });
      ws.onmessage = (event) => this.receive(ws, event);
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.log("websocket closed");
        this.opened = false;
        this.retry("websocket closed");
      };
      ws.onerror = () => this.log("websocket error");
    }

    retry(reason) {
      clearTimeout(this.ackTimer);
      if (this.attempts >= 3) {
        this.log("giving up:", reason, "(the kernel re-installs on its next use)");
        this.dropLink();
        return;
      }
      const delay = 500 * 2 ** this.attempts++;
      this.log(reason, "- retrying in", delay, "ms");
      const ws = this.ws;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        // a late ack may have opened this very link meanwhile: then there is nothing to retry
        if (this.ws === ws && !this.opened) this.openLink();
      }, delay);
    }

    dropLink() {
      clearTimeout(this.ackTimer);
      clearTimeout(this.retryTimer);
      const ws = this.ws;
      if (ws && ws.readyState === WebSocket.OPEN && this.subshellId) {
        this.wire(ws, "control", "delete_subshell_request", { subshell_id: this.subshellId });
      }
      this.subshellId = null;
      this.ws = null;
      this.opened = false;
      if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    }

    // -------------------------------------------------------------- subshells

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

    // A request on the link's socket; resolves with the reply, or null after a bounded wait.
    request(ws, channel, msgType, content) {
      return new Promise((resolve) => {
        const msgId = this.wire(ws, channel, msgType, content);
        const timer = setTimeout(() => {
          this.replies.delete(msgId);
          resolve(null);
        }, this.openAckTimeout);
        this.replies.set(msgId, (reply) => {
          clearTimeout(timer);
          resolve(reply);
        });
      });
    }

    close() {
      if (this.ws && this.ws.readyState === WebSocket.OPEN && this.commId) {
        this.shell("comm_close", { comm_id: this.commId, data: {} });
      }
      this.dropLink();
      this.commId = null;
    }

    // -------------------------------------------------------------------- wire

    shell(msgType, content) {
      this.wire(this.ws, "shell", msgType, content, this.subshellId);
    }

    wire(ws, channel, msgType, content, subshellId = null) {
      const header = {
        msg_id: newId(),
        msg_type: msgType,
        username: "commrouter",
        session: this.sessionId,
        date: new Date().toISOString(),
        version: "5.3",
      };
      if (subshellId) header.subshell_id = subshellId;
      ws.send(
        JSON.stringify({
          channel,
          header,
          parent_header: {},
          metadata: {},
          content,
          buffers: [],
        }),
      );
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
        this.log("comm closed by the kernel");
        this.opened = false;
        return;
      }
      if (message.msg_type === "comm_msg") this.dispatch(content.data || {});
    }

    dispatch(data) {
      const address = data.address;
      if (address === OPEN_ACK) {
        clearTimeout(this.ackTimer);
        clearTimeout(this.retryTimer);
        this.opened = true;
        this.attempts = 0;
        this.log("link open; flushing", this.queue.length, "queued values");
        const queued = this.queue.splice(0);
        for (const [a, v] of queued) this.send(a, v);
        return;
      }
      if (address === PING) {
        this.shell("comm_msg", { comm_id: this.commId, data: { address: PONG, value: true } });
        return;
      }
      if (address === PONG) return;
      if (data.read_request) {
        const variable = this.synced.get(address);
        if (variable) this.send(address, variable.get());
        else this.log("read request for", address, "with no synced variable");
        return;
      }
      this.log("received", address, data.value);
      const variable = this.synced.get(address);
      if (variable) variable.receive(data.value);
      const callbacks = this.subscriptions.get(address);
      if (callbacks) for (const callback of callbacks.values()) this.call(callback, data.value);
    }

    // ---------------------------------------------------------------- public API

    send(address, value) {
      if (!this.opened || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
        this.queue.push([address, value]);
        return;
      }
      this.shell("comm_msg", { comm_id: this.commId, data: { address, value } });
    }

    subscribe(address, callback) {
      const id = this.nextId++;
      if (!this.subscriptions.has(address)) this.subscriptions.set(address, new Map());
      this.subscriptions.get(address).set(id, callback);
      return id;
    }

    unsubscribe(id) {
      for (const [address, callbacks] of this.subscriptions) {
        if (callbacks.delete(id) && callbacks.size === 0) this.subscriptions.delete(address);
      }
    }

    newSyncedVariable(address, initial) {
      let variable = this.synced.get(address);
      if (!variable) {
        variable = new SyncedVariable(this, address, initial);
        this.synced.set(address, variable);
      }
      return variable;
    }
  }

  const existing = globalThis.commrouter;
  if (!existing || existing.version !== VERSION) {
    if (existing && existing.close) existing.close();
    globalThis.commrouter = new Hub();
  }
  const pending = globalThis.commrouterPending || [];
  globalThis.commrouterPending = [];
  for (const callback of pending) globalThis.commrouter.call(callback, globalThis.commrouter);
})();
