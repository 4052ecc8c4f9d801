// The tablerouter client: openapi-fetch over the paths and schemas generated from openapi.json
// (src/generated/schema.ts, written by `npm run generate`, never committed), so a request body or
// an answer that drifts from the service's contract fails to compile.
import createFetchClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

export type { components, paths };
export type RouteRequest = components["schemas"]["RouteRequest"];
export type RouteResponse = components["schemas"]["RouteResponse"];
export type RouteBatchRequest = components["schemas"]["RouteBatchRequest"];
export type RouteBatchResponse = components["schemas"]["RouteBatchResponse"];
export type Problem = components["schemas"]["Problem"];

// Only JSON bodies and problems are typed; POST /route's text/event-stream answer is left to an
// EventSource, so `data` is always the JSON schema's type.
export type TablerouterClient = Client<paths, `application/${string}`>;

/** A client of the service at `baseUrl`; `options` (headers such as an API key, fetch, ...) pass to openapi-fetch. */
export function createClient(
  baseUrl: string,
  options: Omit<ClientOptions, "baseUrl"> = {},
): TablerouterClient {
  return createFetchClient<paths, `application/${string}`>({ ...options, baseUrl });
}
