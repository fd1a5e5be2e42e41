// The gateway on Cloudflare's runtime: route by user to a Durable Object, one durable write,
// reply. The output gate holds the reply until the write is durable, as ours does.
export class TravelAgent {
  constructor(state) {
    this.sql = state.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, text TEXT, t INTEGER)");
  }
  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      const id = msg.id ?? crypto.randomUUID();
      this.sql.exec("INSERT OR REPLACE INTO messages VALUES (?, ?, ?)", id, msg.text, Date.now());
      server.send(JSON.stringify({ type: "response", text: `Reply to: ${msg.text}`,
        userId: msg.userId, id: msg.id, trace: msg.trace }));
    });
    // Answer the client's close frame, or its close handshake waits for a timeout.
    server.addEventListener("close", (ev) => server.close(ev.code, "bye"));
    return new Response(null, { status: 101, webSocket: client });
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (url.pathname !== "/api/gateway/ws") return new Response("not found", { status: 404 });
    const user = url.searchParams.get("userId") || "anonymous";
    return env.AGENT.get(env.AGENT.idFromName(user)).fetch(request);
  },
};
