// Routes one question through the packaged client, then asks for an unknown source to show the
// typed problem; prints both as JSON. Usage: node dist/examples/route.js BASE_URL [QUESTION]
import process from "node:process";
import { createClient, type Problem, type RouteResponse } from "tablerouter-client";

const [baseUrl = "http://127.0.0.1:8000", question = "Which customers placed the most orders?"] =
  process.argv.slice(2);
const client = createClient(baseUrl);

const routed = await client.POST("/route", { body: { question, top_k: 5 } });
if (routed.error !== undefined) {
  throw new Error(`route failed: ${routed.error.detail}`);
}
const answer: RouteResponse = routed.data;
const judge: "lm" | "lexical" = answer.judge_kind;

const missing = await client.POST("/route", { body: { question, source: "no-such-source" } });
const problem: Problem | undefined = missing.error;

console.log(
  JSON.stringify({
    judge_kind: judge,
    tables: answer.tables.map((t) => t.name),
    problem: problem === undefined ? null : { status: problem.status, type: problem.type },
  }),
);
