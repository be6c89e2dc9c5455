// The official TypeScript MCP SDK as a client of a huskies server, over streamable HTTP.
// Usage: node ts_client.mjs SDK_DIR URL TITLE, where SDK_DIR is the installed package
// (.venv/node/node_modules/@modelcontextprotocol/sdk). Lists the tools, reads the pipeline
// status, creates an item, and prints what it saw as one JSON object on stdout.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [sdk, url, title] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(sdk, "dist/esm", path)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");

const client = new Client({ name: "huskies-ts-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const tools = await client.listTools();
const status = await client.callTool({ name: "get_pipeline_status", arguments: {} });
const created = await client.callTool({ name: "create_item", arguments: { title } });
await client.close();
console.log(
  JSON.stringify({
    tools: tools.tools.map((tool) => tool.name),
    status_error: status.isError ?? false,
    status: status.content,
    created_error: created.isError ?? false,
    created: created.content,
  }),
);
