// Transport bindings (protocol-spec/05-transport.md §9): datagrams over UDP
// (§9.1, node:dgram) and over WebSocket (§9.2, the `ws` package, RFC 6455).
//
// An address is {tr: 'udp' | 'ws', address, port}; the address of a datagram
// that came in on an inbound WebSocket connection also has `inbound: true`:
// it is the peer's TCP source address, which the session layer uses for
// cookies and anti-amplification like a UDP source address, and replies to
// it go back on that connection. When the connection closes the address is
// forgotten (`onAddressGone`): a node cannot dial a peer's ephemeral port.
import dgram from 'node:dgram';
import http from 'node:http';
import { isIPv6 } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

/** The HTTP path a node serves `ws` at (05 §9.2, 01 §3). */
export const WS_PATH = '/qdht/v1';

export const WS_LIMITS = Object.freeze({
  // ws closes a connection (1009) whose message exceeds this; 05 §9.2 wants
  // messages above datagram_size dropped, not the connection closed, so the
  // bound is looser and the session layer drops them as `oversized`.
  maxPayload: 65536,
  queue: 64, // datagrams held per connection while it opens
  idle: 180, // seconds without traffic before a dialled connection is closed
  connections: 4096, // inbound + outbound
  badMessages: 16, // text messages a connection may send before it is closed
});

/** A node's stable text for an address (maps, logs). */
export const addressText = (a) => `${a.tr ?? 'udp'}://${isIPv6(a.address) ? `[${a.address}]` : a.address}:${a.port}`;

/** ::ffff:a.b.c.d (a dual-stack socket's view of an IPv4 peer) -> a.b.c.d */
const plainIp = (ip) => (ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip);

const asBytes = (data) => {
  if (Array.isArray(data)) data = Buffer.concat(data); // fragmented message
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
};

/**
 * Every transport a node listens on or dials, behind one `send(bytes, addr)`.
 * `onDatagram(bytes, addr)` gets each datagram received; `onAddressGone(addr)`
 * an inbound address whose connection closed.
 */
export class Transports {
  constructor({ onDatagram, onAddressGone = () => {}, log = () => {}, now = () => Date.now() / 1000 }) {
    this.onDatagram = onDatagram;
    this.onAddressGone = onAddressGone;
    this.log = log;
    this.now = now;
    this.udp = null; // dgram socket
    this.http = null; // http server carrying the WebSocket server
    this.wss = null;
    this.inbound = new Map(); // addressText -> {ws, addr, at, bad}
    this.outbound = new Map(); // addressText -> {ws, addr, at, bad, queue}
    this.stats = { drops: Object.create(null), wsAccepted: 0, wsDialled: 0, wsRefused: 0 };
  }

  drop(reason) {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
  }

  /** Transports this node can send on (`ws` can always be dialled). */
  get kinds() {
    return this.udp ? ['udp', 'ws'] : ['ws'];
  }

  async listenUdp(host, port) {
    const sock = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise((res, rej) => {
      sock.once('error', rej);
      sock.bind(port, host, res);
    });
    sock.on('message', (msg, r) => this.onDatagram(asBytes(msg), { tr: 'udp', address: plainIp(r.address), port: r.port }));
    // 05 §9.1: ICMP errors carry no authentication; treat them as loss.
    sock.on('error', (e) => this.log(`udp socket error: ${e.message}`));
    this.udp = sock;
    const a = sock.address();
    return { tr: 'udp', address: a.address, port: a.port };
  }

  async listenWs(host, port) {
    const server = http.createServer((req, res) => {
      // A plain HTTP request (no upgrade): nothing is served but the WebSocket.
      res.writeHead(req.url === WS_PATH ? 426 : 404, { Connection: 'close' }).end();
    });
    const wss = new WebSocketServer({ noServer: true, maxPayload: WS_LIMITS.maxPayload });
    server.on('upgrade', (req, socket, head) => {
      // 05 §9.2: other paths are refused with an HTTP error before the upgrade.
      const tooMany = this.inbound.size + this.outbound.size >= WS_LIMITS.connections;
      if (req.url !== WS_PATH || tooMany) {
        this.stats.wsRefused += 1;
        socket.end(tooMany ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
    });
    await new Promise((res, rej) => {
      server.once('error', rej);
      server.listen(port, host, res);
    });
    this.http = server;
    this.wss = wss;
    const a = server.address();
    return { tr: 'ws', address: a.address, port: a.port };
  }

  accept(ws, req) {
    const addr = { tr: 'ws', address: plainIp(req.socket.remoteAddress), port: req.socket.remotePort, inbound: true };
    const key = addressText(addr);
    const conn = { ws, addr, at: this.now(), bad: 0 };
    this.inbound.set(key, conn);
    this.stats.wsAccepted += 1;
    this.wire(conn, () => {
      if (this.inbound.get(key) === conn) this.inbound.delete(key);
      this.onAddressGone(addr);
    });
  }

  /** Message and close handlers common to both directions. */
  wire(conn, onGone) {
    conn.ws.on('message', (data, isBinary) => {
      conn.at = this.now();
      if (!isBinary) {
        // 05 §9.2: text messages are ignored (and counted); repeated, the connection closes.
        this.drop('ws-text-message');
        if (++conn.bad > WS_LIMITS.badMessages) conn.ws.close(1008, 'text messages');
        return;
      }
      this.onDatagram(asBytes(data), conn.addr);
    });
    conn.ws.on('error', (e) => this.log(`ws ${addressText(conn.addr)}: ${e.message}`));
    conn.ws.once('close', onGone);
  }

  /** Dial `addr` (client side, 05 §9.2); datagrams wait in a bounded queue until it opens. */
  dial(addr) {
    const dialled = { tr: 'ws', address: addr.address, port: addr.port };
    const key = addressText(dialled);
    const host = isIPv6(addr.address) ? `[${addr.address}]` : addr.address;
    const ws = new WebSocket(`ws://${host}:${addr.port}${WS_PATH}`, { maxPayload: WS_LIMITS.maxPayload, handshakeTimeout: 10000 });
    const conn = { ws, addr: dialled, at: this.now(), bad: 0, queue: [] };
    this.outbound.set(key, conn);
    this.stats.wsDialled += 1;
    ws.once('open', () => {
      for (const d of conn.queue) ws.send(d, { binary: true });
      conn.queue = null;
    });
    this.wire(conn, () => {
      if (conn.queue?.length) this.drop('ws-dial-failed');
      if (this.outbound.get(key) === conn) this.outbound.delete(key);
    });
    return conn;
  }

  /** Send one datagram to `addr`. */
  send(bytes, addr) {
    if ((addr.tr ?? 'udp') === 'udp') {
      if (!this.udp) return this.drop('no-udp-socket');
      this.udp.send(bytes, addr.port, addr.address);
      return undefined;
    }
    const key = addressText(addr);
    if (addr.inbound) {
      const conn = this.inbound.get(key);
      if (!conn || conn.ws.readyState !== WebSocket.OPEN) return this.drop('ws-connection-gone');
      conn.at = this.now();
      conn.ws.send(bytes, { binary: true });
      return undefined;
    }
    let conn = this.outbound.get(key);
    if (!conn) {
      if (this.inbound.size + this.outbound.size >= WS_LIMITS.connections) return this.drop('ws-too-many-connections');
      conn = this.dial(addr);
    }
    conn.at = this.now();
    if (conn.queue) {
      if (conn.queue.length >= WS_LIMITS.queue) return this.drop('ws-queue-full');
      conn.queue.push(bytes);
    } else if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(bytes, { binary: true });
    else this.drop('ws-connection-gone');
    return undefined;
  }

  /**
   * Close dialled connections idle for WS_LIMITS.idle seconds (05 §9.2: MAY),
   * except those `keep(addr)` names: a peer that can reach us only over a
   * connection we dialled (a holder notifying our watch, 08 §3.3) needs it open.
   */
  tick(keep = () => false) {
    const now = this.now();
    for (const conn of this.outbound.values()) if (now - conn.at > WS_LIMITS.idle && !keep(conn.addr)) conn.ws.close(1000, 'idle');
  }

  async close() {
    for (const c of [...this.inbound.values(), ...this.outbound.values()]) c.ws.terminate();
    const waits = [];
    if (this.udp) waits.push(new Promise((r) => this.udp.close(r)));
    if (this.http) {
      this.wss.close();
      waits.push(new Promise((r) => this.http.close(r)));
    }
    await Promise.all(waits);
  }
}
