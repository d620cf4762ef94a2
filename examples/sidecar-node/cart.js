// A shopping cart function in Node.js that keeps nothing in memory between
// invocations: its state lives behind `statekeeper sidecar`, reached through Dapr's
// HTTP API with Node's own fetch (no packages).
//
//   node cart.js demo [CART]    run concurrent invocations against the sidecar, print JSON
//   node cart.js serve [PORT]   serve the function over HTTP (default port 3000):
//                                 POST /carts/{cart}/items     {"sku": "...", "quantity": 1}
//                                 POST /carts/{cart}/checkout
//                                 GET  /carts/{cart}
//
// Environment: DAPR_HTTP_PORT (default 3500), DAPR_API_TOKEN (if the sidecar wants one),
// STATE_STORE (default "statestore"), PUBSUB (default "pubsub").
//
// Each invocation reads what it needs with its ETag and writes it back with that ETag,
// so concurrent invocations never lose an update: a 409 means another one wrote first,
// and the invocation reads again and retries. Checkout moves the cart into an order in
// one state transaction (the cart's delete guarded by its ETag), then publishes an
// "orders" event.

"use strict";

const http = require("node:http");

const SIDECAR = `http://127.0.0.1:${process.env.DAPR_HTTP_PORT || "3500"}/v1.0`;
const STORE = process.env.STATE_STORE || "statestore";
const PUBSUB = process.env.PUBSUB || "pubsub";
const MAX_ATTEMPTS = 50;

class SidecarError extends Error {
  constructor(status, body) {
    super(`sidecar answered ${status}: ${body.errorCode || ""} ${body.message || ""}`.trim());
    this.status = status;
    this.code = body.errorCode;
  }
}

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (process.env.DAPR_API_TOKEN) headers["dapr-api-token"] = process.env.DAPR_API_TOKEN;
  const answer = await fetch(`${SIDECAR}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) {
    let parsed = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text };
    }
    throw new SidecarError(answer.status, parsed);
  }
  return { status: answer.status, etag: answer.headers.get("etag"), text };
}

const key = (path) => encodeURIComponent(path);

// The value of `name` and its ETag; null and no ETag when there is none (204).
async function read(name) {
  const answer = await call("GET", `/state/${STORE}/${key(name)}`);
  if (answer.status === 204) return { value: null, etag: null };
  return { value: JSON.parse(answer.text), etag: answer.etag };
}

// Write `value` only if `name` is still at `etag` (or, with no ETag, does not exist yet).
async function writeIfUnchanged(name, value, etag) {
  const item = { key: name, value };
  if (etag) item.etag = etag;
  else item.options = { concurrency: "first-write" };
  await call("POST", `/state/${STORE}`, [item]);
}

// Read, change and write back `name`, again from the read whenever another
// invocation wrote it in between (409).
async function update(name, change) {
  for (let attempt = 1; ; attempt++) {
    const { value, etag } = await read(name);
    const changed = change(value);
    try {
      await writeIfUnchanged(name, changed, etag);
      return { value: changed, retries: attempt - 1 };
    } catch (error) {
      if (!(error instanceof SidecarError) || error.status !== 409 || attempt >= MAX_ATTEMPTS) {
        throw error;
      }
    }
  }
}

async function addItem(cart, sku, quantity) {
  const { value, retries } = await update(`cart-${cart}`, (current) => {
    const items = { ...((current && current.items) || {}) };
    items[sku] = (items[sku] || 0) + quantity;
    return { items, updates: ((current && current.updates) || 0) + 1 };
  });
  return { cart: value, retries };
}

// Publish an event; the pub/sub API may be missing from an older sidecar (404), in
// which case the event is skipped and the caller is told so.
async function publish(topic, event) {
  try {
    await call("POST", `/publish/${PUBSUB}/${topic}`, event);
    return true;
  } catch (error) {
    if (error instanceof SidecarError && error.status === 404 && error.code === "ERR_NOT_FOUND") {
      console.error(`publishing is not available on this sidecar: ${error.message}`);
      return false;
    }
    throw error;
  }
}

// The cart becomes an order, atomically: the order is written and the cart deleted
// only if nobody changed the cart since it was read (else read again and retry).
async function checkout(cart) {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const { value, etag } = await read(`cart-${cart}`);
    if (value === null) return { status: 404 };
    const order = { id: `order-${cart}`, items: value.items };
    try {
      await call("POST", `/state/${STORE}/transaction`, {
        operations: [
          { operation: "upsert", request: { key: order.id, value: order } },
          { operation: "delete", request: { key: `cart-${cart}`, etag } },
        ],
      });
    } catch (error) {
      // A transaction whose condition failed is a 500 ERR_STATE_TRANSACTION, as in Dapr.
      if (error instanceof SidecarError && error.code === "ERR_STATE_TRANSACTION") continue;
      throw error;
    }
    const published = await publish("orders", { type: "order.placed", order });
    return { status: 200, order, published };
  }
  throw new Error(`the cart ${cart} kept changing during checkout`);
}

async function demo(cart) {
  // Twenty invocations at once on one cart: every one of them must count.
  const skus = ["apple", "pear", "plum", "fig"];
  const adds = Array.from({ length: 20 }, (_, i) => addItem(cart, skus[i % skus.length], 1));
  const results = await Promise.all(adds);
  const retries = results.reduce((sum, r) => sum + r.retries, 0);
  const placed = await checkout(cart);
  const order = await read(`order-${cart}`);
  console.log(JSON.stringify({ cart, retries, checkout: placed, stored: order.value }));
}

function serve(port) {
  const server = http.createServer(async (request, response) => {
    const send = (status, body) => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    try {
      const match = /^\/carts\/([A-Za-z0-9_-]{1,64})(\/items|\/checkout)?$/.exec(request.url);
      if (!match) return send(404, { error: "no such route" });
      const [, cart, action] = match;
      if (request.method === "GET" && !action) {
        const { value } = await read(`cart-${cart}`);
        return value === null ? send(404, { error: "no such cart" }) : send(200, value);
      }
      if (request.method === "POST" && action === "/items") {
        let body = "";
        for await (const chunk of request) body += chunk;
        const { sku, quantity = 1 } = JSON.parse(body || "{}");
        if (typeof sku !== "string" || !Number.isInteger(quantity) || quantity < 1) {
          return send(400, { error: 'send {"sku": "...", "quantity": n}' });
        }
        return send(200, await addItem(cart, sku, quantity));
      }
      if (request.method === "POST" && action === "/checkout") {
        const placed = await checkout(cart);
        return send(placed.status, placed);
      }
      return send(405, { error: "method not allowed" });
    } catch (error) {
      send(error instanceof SyntaxError ? 400 : 502, { error: error.message });
    }
  });
  server.listen(port, "127.0.0.1", () => console.error(`cart function on 127.0.0.1:${port}`));
  process.on("SIGTERM", () => server.close());
}

const [mode = "demo", argument] = process.argv.slice(2);
if (mode === "serve") {
  serve(Number(argument || 3000));
} else if (mode === "demo") {
  demo(argument || `c${Date.now()}`).catch((error) => {
    console.error(error.message);
    process.exitCode = 1;
  });
} else {
  console.error("usage: node cart.js demo [CART] | node cart.js serve [PORT]");
  process.exitCode = 2;
}
