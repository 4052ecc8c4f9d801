import { createClient } from "tablerouter-client";
const client = createClient(process.argv[2] ?? "http://127.0.0.1:8000");
const { data } = await client.POST("/route", { body: { question: "Which customers placed the most orders?" } });
console.log(data?.tables.map((t) => t.name));
